//! `-w table`: renders rows the way etcdctl's tablewriter setup does (upper-cased headers
//! centred, every cell right-aligned, `+---+` borders).

/// Renders a table with a header row.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let headers: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(width(cell));
            }
        }
    }
    let border: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = border.clone();
    out.push_str(&line(&headers, &widths, centre));
    out.push_str(&border);
    for row in rows {
        out.push_str(&line(row, &widths, right));
    }
    out.push_str(&border);
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn line(cells: &[String], widths: &[usize], pad: fn(&str, usize) -> String) -> String {
    let mut out = String::new();
    for (i, w) in widths.iter().enumerate() {
        let cell = cells.get(i).map(String::as_str).unwrap_or("");
        out.push_str("| ");
        out.push_str(&pad(cell, *w));
        out.push(' ');
    }
    out.push_str("|\n");
    out
}

fn centre(s: &str, w: usize) -> String {
    let gap = w.saturating_sub(width(s));
    let left = gap / 2;
    format!("{}{}{}", " ".repeat(left), s, " ".repeat(gap - left))
}

fn right(s: &str, w: usize) -> String {
    format!("{}{}", " ".repeat(w.saturating_sub(width(s))), s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_like_tablewriter() {
        let t = super::render(
            &["endpoint", "health", "took", "error"],
            &[vec![
                "127.0.0.1:23791".into(),
                "true".into(),
                "2.68061ms".into(),
                String::new(),
            ]],
        );
        let want = "\
+-----------------+--------+-----------+-------+
|    ENDPOINT     | HEALTH |   TOOK    | ERROR |
+-----------------+--------+-----------+-------+
| 127.0.0.1:23791 |   true | 2.68061ms |       |
+-----------------+--------+-----------+-------+
";
        assert_eq!(t, want);
    }
}
