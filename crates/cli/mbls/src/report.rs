//! Plain-text tables for the terminal.

/// Prints rows under headers, columns aligned (first column left, the others right).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let ncol = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(ncol) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            if i == 0 {
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            }
        }
        out.push('\n');
    };
    let h: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
    line(&h, &mut out);
    let sep: Vec<String> = width.iter().map(|&w| "-".repeat(w)).collect();
    line(&sep, &mut out);
    for r in rows {
        line(r, &mut out);
    }
    out
}

/// A metric value with 5 decimals, as the reference prints them.
pub fn f5(v: f64) -> String {
    format!("{v:.5}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligned() {
        let t = super::table(
            &["metric", "value"],
            &[vec!["ece".into(), "0.01234".into()]],
        );
        assert_eq!(t, "metric    value\n------  -------\nece     0.01234\n");
    }
}
