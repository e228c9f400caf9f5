//! Prints the configuration composed from the overrides given as arguments, or the error.
//!
//! `cargo run -p mbls-config --example compose -- loss=logit_margin optim.lr=0.05`

use mbls_config::Config;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match Config::compose_args(&args) {
        Ok(cfg) => print!("{cfg}"),
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("config groups:");
            for (group, options) in Config::groups() {
                eprintln!("  {group}: {}", options.join(", "));
            }
            std::process::exit(2);
        }
    }
}
