//! What every benchmark binary shares: its command-line options and its JSON result file.
#![allow(clippy::print_stdout)]

/// The value after `name` on the command line (`--rows 1000`), if given.
pub fn option(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Writes `result` as pretty JSON to `out`, creating its folder, and says where.
pub fn write_result(out: &str, result: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(parent) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(result)?)?;
    println!("written to {out}");
    Ok(())
}
