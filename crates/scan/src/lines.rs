//! Byte offsets of line starts in a scanned text, for turning a match's offset into its
//! line and column, and for looking at the line around it.

/// The line starts of one text.
pub(crate) struct Lines {
    starts: Vec<usize>,
    len: usize,
}

impl Lines {
    /// Indexes `text`'s lines.
    pub(crate) fn new(text: &[u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text).map(|i| i + 1));
        Self {
            starts,
            len: text.len(),
        }
    }

    /// The 0-based line holding `offset`.
    fn index(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// Where the line holding `offset` starts and ends (its newline included).
    fn bounds(&self, offset: usize) -> (usize, usize) {
        let i = self.index(offset);
        let end = self.starts.get(i + 1).copied().unwrap_or(self.len);
        (self.starts[i], end)
    }

    /// The line holding `offset`.
    pub(crate) fn line<'t>(&self, text: &'t [u8], offset: usize) -> &'t [u8] {
        let (s, e) = self.bounds(offset);
        &text[s..e]
    }

    /// Length in bytes of the line holding `offset`.
    pub(crate) fn line_len(&self, offset: usize) -> usize {
        let (s, e) = self.bounds(offset);
        e - s
    }

    /// 1-based line and byte column of `offset`.
    pub(crate) fn position(&self, offset: usize) -> (u32, u32) {
        let i = self.index(offset);
        (
            u32::try_from(i + 1).unwrap_or(u32::MAX),
            u32::try_from(offset - self.starts[i] + 1).unwrap_or(u32::MAX),
        )
    }
}
