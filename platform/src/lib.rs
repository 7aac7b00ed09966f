#![doc = include_str!("../README.md")]

pub mod board;
pub mod clocks;
pub mod cpu;
pub mod energy;
pub mod process;
pub mod report;
pub mod root;
pub mod thermal;

pub use board::{Board, L4tRelease, NvpModel, PowerRail};
pub use clocks::CpuClock;
pub use cpu::{Cores, CpuInfo, IsaFeatures};
pub use energy::{EnergyMeter, EnergyReading};
pub use process::ThreadTime;
pub use report::{Platform, Warning};
pub use root::SysRoot;
pub use thermal::{CoolingDevice, ThermalZone, Trip};
