//! Embeds an rpath to libtorch's library folder in this crate's test and example binaries,
//! and passes the folder on (as `DEP_MBLS_LIBTORCH_LIBTORCH_LIB`) to crates that link us,
//! so that their binaries run without `LD_LIBRARY_PATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        }
        println!("cargo:libtorch_lib={lib}");
    }
}
