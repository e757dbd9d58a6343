//! The paper's own numbers, read at run time from the reference facts
//! (`../shared/reference/bert-facts.md`): each table is the first Markdown table after the
//! line that names it.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// A Markdown table: header cells and rows of cells.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl PaperTable {
    /// Column index by exact header text.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The number in a cell ("84.4", "80%", "45.7M" → 84.4, 80, 45.7).
    pub fn number(&self, row: usize, col: usize) -> Option<f64> {
        let cell = self.rows.get(row)?.get(col)?;
        let t: String = cell
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .collect();
        t.parse().ok()
    }
}

fn cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(|c| c.trim().to_string()).collect()
}

/// The first table after the first line containing `marker`.
pub fn find_table(text: &str, marker: &str) -> Result<PaperTable> {
    let mut lines = text.lines().skip_while(|l| !l.contains(marker));
    if lines.next().is_none() {
        bail!("no line containing {marker:?}");
    }
    let mut lines = lines.skip_while(|l| !l.trim_start().starts_with('|'));
    let header = cells(
        lines
            .next()
            .with_context(|| format!("no table after {marker:?}"))?,
    );
    let sep = lines.next().unwrap_or("");
    if !sep.contains("---") {
        bail!("the table after {marker:?} has no separator line");
    }
    let rows: Vec<Vec<String>> = lines
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(cells)
        .collect();
    if rows.is_empty() {
        bail!("the table after {marker:?} has no rows");
    }
    Ok(PaperTable { header, rows })
}

/// Tables 5, 6 and 8 of the paper.
#[derive(Clone, Debug)]
pub struct Paper {
    pub table5: PaperTable,
    pub table6: PaperTable,
    pub table8: PaperTable,
    pub source: String,
}

pub fn load(path: &Path) -> Result<Paper> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Paper {
        table5: find_table(&text, "**Table 5").context("Table 5")?,
        table6: find_table(&text, "**Table 6").context("Table 6")?,
        table8: find_table(&text, "Table 8").context("Table 8")?,
        source: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_table_after_its_marker() {
        let text = "intro\n| a | b |\n|---|---|\n| 0 | 0 |\n\n**Table 5 — x**\n\n| Tasks | MNLI-m |\n|---|---|\n| BERT | 84.4 |\n| No NSP | 83.9 |\nafter\n";
        let t = find_table(text, "**Table 5").unwrap();
        assert_eq!(t.header, vec!["Tasks", "MNLI-m"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.number(1, t.column("MNLI-m").unwrap()), Some(83.9));
        assert!(find_table(text, "**Table 9").is_err());
    }

    #[test]
    fn numbers_in_cells_with_units() {
        let t = PaperTable {
            header: vec!["MASK".into(), "params".into()],
            rows: vec![vec!["80%".into(), "45.7M".into()]],
        };
        assert_eq!(t.number(0, 0), Some(80.0));
        assert_eq!(t.number(0, 1), Some(45.7));
    }
}
