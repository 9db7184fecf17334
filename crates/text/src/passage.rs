//! Non-task prose to passages: heading-aware, at most `max_tokens` word pieces, tables
//! and code kept whole where they fit.

/// A stand-in for a WordPiece count when the caller has no tokenizer: words, plus one
/// piece per punctuation mark and per four letters beyond the first six of a long word.
/// Over-counts slightly, which keeps passages inside the window.
pub fn approx_word_pieces(text: &str) -> usize {
    text.split_whitespace()
        .map(|word| {
            let punctuation = word.chars().filter(|c| !c.is_alphanumeric()).count();
            let letters = word.chars().count() - punctuation;
            1 + punctuation + letters.saturating_sub(6).div_ceil(4)
        })
        .sum()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    Paragraph,
    List,
    Table,
    Code,
}

/// Consecutive prose lines of one kind in one section.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub kind: BlockKind,
    pub heading: Option<usize>,
    pub first_line: usize,
    pub last_line: usize,
    pub lines: Vec<String>,
}

/// A passage before ids are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    pub heading: Option<usize>,
    pub text: String,
    pub first_line: usize,
    pub last_line: usize,
    pub tokens: usize,
}

/// Packs the blocks of each section into pieces of at most `max_tokens`.
pub(crate) fn pack(
    blocks: &[Block],
    max_tokens: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Piece> {
    let max_tokens = max_tokens.max(1);
    let mut pieces = Vec::new();
    let mut current: Option<Piece> = None;
    for block in blocks {
        for unit in units(block, max_tokens, count) {
            match &mut current {
                Some(piece)
                    if piece.heading == unit.heading
                        && piece.tokens + unit.tokens <= max_tokens =>
                {
                    piece.text.push_str("\n\n");
                    piece.text.push_str(&unit.text);
                    piece.last_line = unit.last_line;
                    piece.tokens += unit.tokens;
                }
                _ => {
                    pieces.extend(current.take());
                    current = Some(unit);
                }
            }
        }
    }
    pieces.extend(current);
    pieces
}

/// A block as one unit when it fits, else cut at lines (and long lines at words).
fn units(block: &Block, max_tokens: usize, count: &dyn Fn(&str) -> usize) -> Vec<Piece> {
    let text = block.lines.join("\n");
    if !text.chars().any(char::is_alphanumeric) {
        return Vec::new();
    }
    let tokens = count(&text);
    if tokens <= max_tokens {
        return vec![Piece {
            heading: block.heading,
            text,
            first_line: block.first_line,
            last_line: block.last_line,
            tokens,
        }];
    }
    let mut out: Vec<Piece> = Vec::new();
    let mut current: Option<Piece> = None;
    // Lines are 1:1 with the file's lines between first and last.
    for (offset, line) in block.lines.iter().enumerate() {
        let number = block.first_line + offset;
        for part in split_long_line(line, max_tokens, count) {
            let part_tokens = count(&part);
            match &mut current {
                Some(piece) if piece.tokens + part_tokens <= max_tokens => {
                    piece.text.push('\n');
                    piece.text.push_str(&part);
                    piece.tokens += part_tokens;
                    piece.last_line = number;
                }
                _ => {
                    out.extend(current.take());
                    current = Some(Piece {
                        heading: block.heading,
                        text: part,
                        first_line: number,
                        last_line: number,
                        tokens: part_tokens,
                    });
                }
            }
        }
    }
    out.extend(current);
    out.retain(|piece| piece.text.chars().any(char::is_alphanumeric));
    out
}

fn split_long_line(line: &str, max_tokens: usize, count: &dyn Fn(&str) -> usize) -> Vec<String> {
    if count(line) <= max_tokens {
        return vec![line.to_owned()];
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut current_tokens = 0;
    for word in line.split_whitespace() {
        let tokens = count(word);
        if !current.is_empty() && current_tokens + tokens > max_tokens {
            parts.push(std::mem::take(&mut current));
            current_tokens = 0;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        current_tokens += tokens;
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    fn block(kind: BlockKind, heading: Option<usize>, first: usize, lines: &[&str]) -> Block {
        Block {
            kind,
            heading,
            first_line: first,
            last_line: first + lines.len() - 1,
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    #[test]
    fn blocks_pack_up_to_the_limit_and_never_cross_a_heading() {
        let blocks = [
            block(BlockKind::Paragraph, Some(0), 2, &["one two three"]),
            block(BlockKind::Paragraph, Some(0), 4, &["four five"]),
            block(BlockKind::Table, Some(0), 6, &["| a | b |", "| c | d |"]),
            block(BlockKind::Paragraph, Some(1), 9, &["other section"]),
        ];
        let pieces = pack(&blocks, 10, &words);
        let texts: Vec<_> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "one two three\n\nfour five",
                "| a | b |\n| c | d |",
                "other section"
            ]
        );
        assert_eq!((pieces[1].first_line, pieces[1].last_line), (6, 7));
        assert!(pieces.iter().all(|p| p.tokens <= 10));
    }

    #[test]
    fn oversized_blocks_are_cut_at_lines_then_words() {
        let blocks = [block(
            BlockKind::Code,
            None,
            1,
            &["a b c", "d e f g h i j k"],
        )];
        let pieces = pack(&blocks, 4, &words);
        let texts: Vec<_> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["a b c", "d e f g", "h i j k"]);
        assert!(pieces.iter().all(|p| p.tokens <= 4));
        assert_eq!(pieces[2].first_line, 2);
    }

    #[test]
    fn approximate_count_grows_with_long_words() {
        assert_eq!(approx_word_pieces("le chat"), 2);
        assert!(approx_word_pieces("anticonstitutionnellement") > 3);
        assert_eq!(approx_word_pieces("fin."), 2);
    }
}
