//! The cursor every read of a message goes through: each read checks the bounds first and
//! fails with [`WireError::Truncated`] instead of indexing past the end.

use super::WireError;

/// A position in a message.
#[derive(Debug, Clone)]
pub(super) struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `msg`.
    pub(super) fn new(msg: &'a [u8]) -> Self {
        Reader { msg, pos: 0 }
    }

    /// The whole message.
    pub(super) fn message(&self) -> &'a [u8] {
        self.msg
    }

    /// The offset of the next byte.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to `pos` (where a name read from elsewhere ended); a later read checks it.
    pub(super) fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// Bytes left after the cursor.
    pub(super) fn remaining(&self) -> usize {
        self.msg.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let bytes = self.msg.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    /// The next byte.
    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        let [b] = self.array()?;
        Ok(b)
    }

    /// The next big-endian `u16`.
    pub(super) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// The next big-endian `u32`.
    pub(super) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// The next `N` bytes as an array.
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| WireError::Truncated)
    }
}
