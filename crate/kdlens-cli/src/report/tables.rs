//! Plain-text tables.

use crate::train::EpochRecord;

/// The training history as CSV with a header row.
pub fn history_csv(history: &[EpochRecord]) -> String {
    let mut out = String::from(
        "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second\n",
    );
    for r in history {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.3},{:.2}\n",
            r.epoch,
            r.lr,
            r.train_loss,
            r.train_accuracy,
            r.val_loss,
            r.val_accuracy,
            r.seconds,
            r.images_per_second
        ));
    }
    out
}

/// A GitHub-flavoured Markdown table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_table_has_header_rule_and_rows() {
        let table = markdown_table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(table, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }
}
