//! Pull cursors. Opaque to clients; here they are `<epoch>.<seq>`: the
//! database's epoch (so a cursor from another or a re-created database is
//! recognised and answered with 410) and the last change sequence number served.

/// Why a cursor cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum CursorError {
    /// Not something this protocol's servers issue: a client bug (400).
    Malformed,
    /// Well-formed but minted by another database (410: pull from the start).
    ForeignEpoch,
}

pub fn encode(epoch: &str, seq: i64) -> String {
    format!("{epoch}.{seq}")
}

/// The sequence number after which to pull. An absent or empty cursor means
/// "from the start".
pub fn decode(epoch: &str, cursor: Option<&str>) -> Result<i64, CursorError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(0);
    };
    let (cursor_epoch, seq) = cursor.split_once('.').ok_or(CursorError::Malformed)?;
    let seq: i64 = seq.parse().map_err(|_| CursorError::Malformed)?;
    let epoch_shaped = cursor_epoch.len() == 32 && cursor_epoch.bytes().all(|b| b.is_ascii_hexdigit());
    if seq < 0 || !epoch_shaped || seq.to_string().len() != cursor.len() - cursor_epoch.len() - 1 {
        return Err(CursorError::Malformed);
    }
    if cursor_epoch != epoch {
        return Err(CursorError::ForeignEpoch);
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip() {
        assert_eq!(decode(EPOCH, Some(&encode(EPOCH, 42))), Ok(42));
        assert_eq!(decode(EPOCH, None), Ok(0));
        assert_eq!(decode(EPOCH, Some("")), Ok(0));
    }

    #[test]
    fn rejects() {
        for bad in ["x", "42", "0123.5", &format!("{EPOCH}.-1"), &format!("{EPOCH}.+1"), &format!("{EPOCH}.1e3"), &format!("{EPOCH}.")] {
            assert_eq!(decode(EPOCH, Some(bad)), Err(CursorError::Malformed), "{bad}");
        }
        assert_eq!(decode(EPOCH, Some("ffffffffffffffffffffffffffffffff.3")), Err(CursorError::ForeignEpoch));
    }
}
