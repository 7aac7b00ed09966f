//! The CPU: model name, ISA features and core counts, from `/proc/cpuinfo` and
//! `/sys/devices/system/cpu/{online,present}` (and, for the running process, from the CPU itself).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::root::{parse_cpu_list, SysRoot};

/// What `/proc/cpuinfo` says about the first CPU, plus the number of `processor` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuInfo {
    /// A readable name: x86 `model name`; on ARM the core named from `CPU implementer` and
    /// `CPU part` (the kernel's `model name` there is only "ARMv8 Processor rev 1 (v8l)").
    pub model: Option<String>,
    /// `vendor_id` (x86) or the ARM implementer's name.
    pub vendor: Option<String>,
    /// `processor` entries (CPUs the kernel has online).
    pub logical_cpus: usize,
    /// The raw feature words (`flags` on x86, `Features` on ARM), sorted.
    pub flags: BTreeSet<String>,
}

/// Parses `/proc/cpuinfo` text (x86 or ARM layout). Fields of the first CPU are used.
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    let (mut model_name, mut implementer, mut part, mut variant, mut revision) = (None, None, None, None, None);
    let mut first_block = true;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "processor" {
            if info.logical_cpus > 0 {
                first_block = false;
            }
            info.logical_cpus += 1;
            continue;
        }
        if !first_block {
            continue;
        }
        let set = |slot: &mut Option<String>| {
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.to_string());
            }
        };
        match key {
            "model name" | "Processor" => set(&mut model_name),
            "vendor_id" => set(&mut info.vendor),
            "CPU implementer" => set(&mut implementer),
            "CPU part" => set(&mut part),
            "CPU variant" => set(&mut variant),
            "CPU revision" => set(&mut revision),
            "flags" | "Features" if info.flags.is_empty() => {
                info.flags = value.split_whitespace().map(str::to_string).collect();
            }
            _ => {}
        }
    }
    let arm = implementer.as_deref().and_then(parse_hex).map(|imp| (imp, part.as_deref().and_then(parse_hex)));
    if let Some((imp, part)) = arm {
        info.vendor = Some(arm_implementer(imp).map_or_else(|| format!("implementer {imp:#x}"), str::to_string));
        let core = part.and_then(|p| arm_core(imp, p));
        let rev = match (variant.as_deref().and_then(parse_hex), revision.as_deref().and_then(|r| r.parse::<u32>().ok())) {
            (Some(v), Some(r)) => format!(" r{v}p{r}"),
            _ => String::new(),
        };
        info.model = match core {
            Some(core) => Some(format!("{core}{rev}")),
            None => model_name.or_else(|| part.map(|p| format!("part {p:#x}"))),
        };
    } else {
        info.model = model_name;
    }
    info
}

fn parse_hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

fn arm_implementer(imp: u32) -> Option<&'static str> {
    Some(match imp {
        0x41 => "ARM",
        0x4e => "NVIDIA",
        0x51 => "Qualcomm",
        0x61 => "Apple",
        0xc0 => "Ampere",
        _ => return None,
    })
}

/// Core names from the `MIDR` implementer/part numbers (ARM's and NVIDIA's technical reference manuals).
fn arm_core(imp: u32, part: u32) -> Option<&'static str> {
    Some(match (imp, part) {
        (0x41, 0xd03) => "ARM Cortex-A53",
        (0x41, 0xd04) => "ARM Cortex-A35",
        (0x41, 0xd05) => "ARM Cortex-A55",
        (0x41, 0xd07) => "ARM Cortex-A57",
        (0x41, 0xd08) => "ARM Cortex-A72",
        (0x41, 0xd09) => "ARM Cortex-A73",
        (0x41, 0xd0a) => "ARM Cortex-A75",
        (0x41, 0xd0b) => "ARM Cortex-A76",
        (0x41, 0xd0c) => "ARM Neoverse N1",
        (0x41, 0xd0d) => "ARM Cortex-A77",
        (0x41, 0xd40) => "ARM Neoverse V1",
        (0x41, 0xd41) => "ARM Cortex-A78",
        (0x41, 0xd42) => "ARM Cortex-A78AE",
        (0x41, 0xd46) => "ARM Cortex-A510",
        (0x41, 0xd47) => "ARM Cortex-A710",
        (0x41, 0xd49) => "ARM Neoverse N2",
        (0x41, 0xd4f) => "ARM Neoverse V2",
        (0x4e, 0x004) => "NVIDIA Carmel",
        _ => return None,
    })
}

/// The instruction-set extensions perch's kernels care about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IsaFeatures {
    /// aarch64 Advanced SIMD (`asimd`).
    pub neon: bool,
    /// aarch64 `sdot`/`udot` (`asimddp`, ARMv8.2; Orin's A78AE has it, the Nano's A57 does not).
    pub dotprod: bool,
    /// aarch64 int8 matrix multiply (`i8mm`, ARMv8.6).
    pub i8mm: bool,
    /// aarch64 half-precision arithmetic (`asimdhp`).
    pub fp16: bool,
    pub sve: bool,
    pub avx2: bool,
    pub fma: bool,
    pub f16c: bool,
    pub avx512f: bool,
    /// AVX-512 VNNI (`avx512_vnni`).
    pub avx512_vnni: bool,
    /// AVX-VNNI (VEX-encoded, `avx_vnni`).
    pub avx_vnni: bool,
}

impl IsaFeatures {
    /// From `/proc/cpuinfo` feature words (x86 `flags` or ARM `Features`).
    pub fn from_flags(flags: &BTreeSet<String>) -> Self {
        let has = |f: &str| flags.contains(f);
        Self {
            neon: has("asimd"),
            dotprod: has("asimddp"),
            i8mm: has("i8mm"),
            fp16: has("asimdhp"),
            sve: has("sve"),
            avx2: has("avx2"),
            fma: has("fma"),
            f16c: has("f16c"),
            avx512f: has("avx512f"),
            avx512_vnni: has("avx512_vnni"),
            avx_vnni: has("avx_vnni"),
        }
    }

    /// What the running process's CPU reports (`std::arch` run-time detection: the same test the
    /// kernels' dispatch uses).
    pub fn detected() -> Self {
        #[allow(unused_mut)]
        let mut f = Self::default();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as x86;
            f.avx2 = x86!("avx2");
            f.fma = x86!("fma");
            f.f16c = x86!("f16c");
            f.avx512f = x86!("avx512f");
            f.avx512_vnni = x86!("avx512vnni");
            f.avx_vnni = x86!("avxvnni");
        }
        #[cfg(target_arch = "aarch64")]
        {
            use std::arch::is_aarch64_feature_detected as arm;
            f.neon = arm!("neon");
            f.dotprod = arm!("dotprod");
            f.i8mm = arm!("i8mm");
            f.fp16 = arm!("fp16");
            f.sve = arm!("sve");
        }
        f
    }

    /// The names of the features present, in a fixed order.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.neon, "neon"),
            (self.dotprod, "dotprod"),
            (self.i8mm, "i8mm"),
            (self.fp16, "fp16"),
            (self.sve, "sve"),
            (self.avx2, "avx2"),
            (self.fma, "fma"),
            (self.f16c, "f16c"),
            (self.avx512f, "avx512f"),
            (self.avx512_vnni, "avx512_vnni"),
            (self.avx_vnni, "avx_vnni"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// CPU numbers online and present (`/sys/devices/system/cpu/{online,present}`), and the number of
/// threads this process may run on (its affinity mask and cgroup quota).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cores {
    pub online: Option<Vec<u32>>,
    pub present: Option<Vec<u32>>,
    /// `std::thread::available_parallelism` (only for the host root; `None` for a fake tree).
    pub available_parallelism: Option<usize>,
}

impl Cores {
    pub fn read(root: &SysRoot) -> Self {
        let list = |f: &str| root.read(&format!("/sys/devices/system/cpu/{f}")).and_then(|t| parse_cpu_list(&t));
        Self {
            online: list("online"),
            present: list("present"),
            available_parallelism: root
                .is_host()
                .then(|| std::thread::available_parallelism().ok().map(|n| n.get()))
                .flatten(),
        }
    }

    /// Cores present but not online (e.g. the Nano's 5W mode turns two of four off).
    pub fn offline(&self) -> Vec<u32> {
        match (&self.online, &self.present) {
            (Some(on), Some(present)) => present.iter().copied().filter(|c| !on.contains(c)).collect(),
            _ => Vec::new(),
        }
    }

    /// How many threads a `threads = 0` ("one per core") setting gets: the process's available
    /// parallelism on the host, else the online count.
    pub fn usable(&self) -> Option<usize> {
        self.available_parallelism.or_else(|| self.online.as_ref().map(Vec::len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_cpuinfo() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma f16c\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n";
        let info = parse_cpuinfo(text);
        assert_eq!(info.model.as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(info.vendor.as_deref(), Some("AuthenticAMD"));
        assert_eq!(info.logical_cpus, 2);
        let isa = IsaFeatures::from_flags(&info.flags);
        assert_eq!(isa.names(), ["avx2", "fma", "f16c"]);
    }

    #[test]
    fn arm_core_names_and_unknown_parts() {
        let a78 = "processor\t: 0\nFeatures\t: fp asimd asimdhp asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd42\nCPU revision\t: 1\n";
        let info = parse_cpuinfo(a78);
        assert_eq!(info.model.as_deref(), Some("ARM Cortex-A78AE r0p1"));
        let isa = IsaFeatures::from_flags(&info.flags);
        assert!(isa.neon && isa.dotprod && isa.fp16 && !isa.i8mm);
        let unknown = "processor\t: 0\nmodel name\t: Mystery v9\nCPU implementer\t: 0x99\nCPU part\t: 0x123\n";
        let info = parse_cpuinfo(unknown);
        assert_eq!(info.model.as_deref(), Some("Mystery v9"));
        assert_eq!(info.vendor.as_deref(), Some("implementer 0x99"));
    }

    #[test]
    fn empty_cpuinfo_is_all_unknown() {
        let info = parse_cpuinfo("");
        assert_eq!(info, CpuInfo::default());
        assert!(IsaFeatures::from_flags(&info.flags).names().is_empty());
    }
}
