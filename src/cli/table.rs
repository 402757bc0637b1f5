//! Column alignment identical to Go's `text/tabwriter` with docker's settings
//! (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`): a column is as wide as its
//! widest cell plus 3, at least 10; a line's last cell is never padded.

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// Aligns the tab-separated cells of `text`.
pub fn tabulate(text: &str) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // A trailing newline ends the last line rather than starting an empty one.
    let trailing_newline = text.ends_with('\n');
    if trailing_newline {
        lines.pop();
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(&lines, &mut widths, 0, lines.len(), &mut out);
    if !trailing_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn cell_width(s: &str) -> usize {
    s.chars().count()
}

/// Go's `Writer.format`: finds blocks of consecutive lines that have a cell
/// in the next column, sizes that column per block, and recurses.
fn format(
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    mut line0: usize,
    line1: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, widths, line0, this, out);
        line0 = this;
        let mut width = MIN_WIDTH;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(cell_width(lines[this][column]) + PADDING);
            this += 1;
        }
        widths.push(width);
        format(lines, widths, line0, this, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, widths, line0, line1, out);
}

fn write_lines(lines: &[Vec<&str>], widths: &[usize], from: usize, to: usize, out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                let pad = widths[j].saturating_sub(cell_width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::tabulate;

    #[test]
    fn docker_images_layout() {
        let t = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\nbusybox\tlatest\t0123456789ab\t2 days ago\t4.26MB\n";
        assert_eq!(
            tabulate(t),
            "REPOSITORY   TAG       IMAGE ID       CREATED      SIZE\n\
             busybox      latest    0123456789ab   2 days ago   4.26MB\n"
        );
    }

    #[test]
    fn ragged_lines_form_blocks() {
        // A line with fewer cells ends the column block, as in Go.
        let t = "a\tb\tc\nlonger-than-ten\nx\ty\tz\n";
        assert_eq!(
            tabulate(t),
            "a         b         c\nlonger-than-ten\nx         y         z\n"
        );
        assert_eq!(tabulate("no tabs"), "no tabs");
        assert_eq!(tabulate(""), "");
        assert_eq!(tabulate("é\tx\n"), "é         x\n");
    }
}
