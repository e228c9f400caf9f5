//! Gives this package's test binaries an rpath to libtorch's library
//! folder, received from `mbls-engine`, so they run without `LD_LIBRARY_PATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_MBLS_LIBTORCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_MBLS_LIBTORCH_LIBTORCH_LIB")
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows")
    {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
