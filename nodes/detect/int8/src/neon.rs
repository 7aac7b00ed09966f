//! aarch64 kernels: NEON `smull`/`smlal` + `sadalp` (ARMv8.0, the Jetson Nano's Cortex-A57) and
//! `sdot` (dotprod, e.g. Orin's Cortex-A78AE), selected at run time.
