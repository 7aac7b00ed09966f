//! x86_64 kernels: AVX2 (exact i16 `vpmaddwd` and 7-bit `vpmaddubsw`), AVX-VNNI and AVX512-VNNI
//! (`vpdpbusd`), selected at run time.

pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

pub(crate) fn has_avx_vnni() -> bool {
    has_avx2() && std::arch::is_x86_feature_detected!("avxvnni")
}

pub(crate) fn has_avx512_vnni() -> bool {
    has_avx2()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}
