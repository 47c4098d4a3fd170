//! A minimal protobuf wire-format reader over a borrowed buffer, and the few writing
//! functions the reply needs.
//!
//! prost decodes into owned types, so decoding a request with prost copies every state
//! value out of the request body. This reader hands out sub-slices instead, which is how
//! the handler leaves untouched states (often most of a request's bytes) uncopied. It
//! reads only what the protocol's outer messages need: keys, varints and
//! length-delimited fields, and skips everything else the way protobuf parsers do.
//!
//! The writing side encodes the reply's outer messages straight from what the functions
//! did, with no intermediate owned messages; it writes what prost writes (fields in
//! field-number order, proto3 defaults left out).

use std::fmt;

/// What was wrong with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireError(pub(crate) &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for WireError {}

/// The wire types of the protobuf encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    LengthDelimited,
    StartGroup,
    EndGroup,
    Fixed32,
}

/// How deep groups may nest before the input is refused (protobuf's own limit is 100).
const MAX_GROUP_DEPTH: u32 = 100;

/// Reads fields front to back from a borrowed buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A base-128 varint of at most ten bytes.
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                return Err(WireError("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.buf.len() < 10 {
            WireError("truncated varint")
        } else {
            WireError("varint longer than ten bytes")
        })
    }

    /// A field key: the field number and its wire type.
    pub(crate) fn key(&mut self) -> Result<(u32, WireType), WireError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(WireError("field key overflows 32 bits"));
        }
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::LengthDelimited,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return Err(WireError("invalid wire type")),
        };
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return Err(WireError("field number 0"));
        }
        Ok((tag, wire_type))
    }

    /// The payload of a length-delimited field, borrowed from the buffer.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        // Compare before converting: a huge claimed length is refused without allocating.
        if len > self.buf.len() as u64 {
            return Err(WireError(
                "length-delimited field runs past the end of its message",
            ));
        }
        let (payload, rest) = self.buf.split_at(len as usize);
        self.buf = rest;
        Ok(payload)
    }

    /// `N` bytes of a fixed-width field (`fixed32`, `fixed64` and their kin).
    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let Some((bytes, rest)) = self.buf.split_first_chunk::<N>() else {
            return Err(WireError("truncated fixed-width field"));
        };
        self.buf = rest;
        Ok(*bytes)
    }

    /// Skips the value of a field that the caller does not read.
    pub(crate) fn skip(&mut self, tag: u32, wire_type: WireType) -> Result<(), WireError> {
        self.skip_at_depth(tag, wire_type, 0)
    }

    fn skip_at_depth(
        &mut self,
        tag: u32,
        wire_type: WireType,
        depth: u32,
    ) -> Result<(), WireError> {
        match wire_type {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.advance(8),
            WireType::Fixed32 => self.advance(4),
            WireType::LengthDelimited => self.bytes().map(drop),
            WireType::StartGroup => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(WireError("groups nested too deeply"));
                }
                loop {
                    if self.is_empty() {
                        return Err(WireError("group without an end"));
                    }
                    let (inner_tag, inner_type) = self.key()?;
                    if inner_type == WireType::EndGroup {
                        return if inner_tag == tag {
                            Ok(())
                        } else {
                            Err(WireError("group ends with another field number"))
                        };
                    }
                    self.skip_at_depth(inner_tag, inner_type, depth + 1)?;
                }
            }
            WireType::EndGroup => Err(WireError("end of a group that was not started")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), WireError> {
        if self.buf.len() < n {
            return Err(WireError("truncated fixed-width field"));
        }
        self.buf = &self.buf[n..];
        Ok(())
    }
}

/// The number of bytes `value` takes as a varint.
#[inline]
pub(crate) fn varint_len(value: u64) -> usize {
    // One byte per started group of seven bits, and one for zero.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `value` as a varint.
#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends the key and the length of a length-delimited field whose payload is `len`
/// bytes; the caller appends the payload.
#[inline]
pub(crate) fn put_len_key(buf: &mut Vec<u8>, tag: u32, len: usize) {
    put_varint(buf, u64::from(tag << 3 | 2));
    put_varint(buf, len as u64);
}

/// The encoded size of a length-delimited field with a `len`-byte payload, key included.
#[inline]
pub(crate) fn len_field_len(tag: u32, len: usize) -> usize {
    varint_len(u64::from(tag << 3 | 2)) + varint_len(len as u64) + len
}

/// The encoded size of a `string` or `bytes` field: nothing when empty (the proto3
/// default is left out).
#[inline]
pub(crate) fn bytes_field_len(tag: u32, bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        0
    } else {
        len_field_len(tag, bytes.len())
    }
}

/// Appends a `string` or `bytes` field, unless it is empty.
#[inline]
pub(crate) fn put_bytes_field(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_len_key(buf, tag, bytes.len());
        buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_varints_read_back_with_their_predicted_length() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "value {value}");
            assert_eq!(Reader::new(&buf).varint(), Ok(value), "value {value}");
        }
    }

    #[test]
    fn varints_decode_and_refuse_overflow() {
        let cases: [(&[u8], Result<u64, WireError>); 6] = [
            (&[0x00], Ok(0)),
            (&[0x96, 0x01], Ok(150)),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                Ok(u64::MAX),
            ),
            (&[0x96], Err(WireError("truncated varint"))),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                Err(WireError("varint overflows 64 bits")),
            ),
            (&[0xff; 11], Err(WireError("varint overflows 64 bits"))),
        ];
        for (input, expected) in cases {
            assert_eq!(Reader::new(input).varint(), expected, "input {input:02x?}");
        }
    }

    #[test]
    fn a_huge_claimed_length_is_refused_without_reading_it() {
        // Field 2, length-delimited, claiming 2^62 bytes.
        let input = [0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
        let mut reader = Reader::new(&input);
        assert_eq!(reader.key(), Ok((2, WireType::LengthDelimited)));
        assert!(reader.bytes().is_err());
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        // 1: varint 1; 2: fixed64; 3: bytes "ab"; 4: group holding 1: varint; 5: fixed32; then 6: varint 7.
        let input = [
            0x08, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1a, 0x02, b'a', b'b', 0x23, 0x08, 0x05,
            0x24, 0x2d, 1, 2, 3, 4, 0x30, 0x07,
        ];
        let mut reader = Reader::new(&input);
        for _ in 0..5 {
            let (tag, wire_type) = reader.key().unwrap();
            reader.skip(tag, wire_type).unwrap();
        }
        assert_eq!(reader.key(), Ok((6, WireType::Varint)));
        assert_eq!(reader.varint(), Ok(7));
        assert!(reader.is_empty());
    }

    #[test]
    fn malformed_keys_and_groups_are_errors() {
        let cases: [&[u8]; 5] = [
            &[0x00],             // field number 0
            &[0x0e],             // wire type 6
            &[0x0c],             // end group never started
            &[0x0b, 0x08, 0x01], // group without an end
            &[0x0b, 0x14],       // group 1 ended as group 2
        ];
        for input in cases {
            let mut reader = Reader::new(input);
            let result = reader.key().and_then(|(tag, wt)| reader.skip(tag, wt));
            assert!(result.is_err(), "input {input:02x?}");
        }
    }

    #[test]
    fn deeply_nested_groups_are_refused() {
        let mut input = vec![0x0b; 200];
        input.extend(std::iter::repeat_n(0x0c, 200));
        let mut reader = Reader::new(&input);
        let (tag, wire_type) = reader.key().unwrap();
        assert_eq!(
            reader.skip(tag, wire_type),
            Err(WireError("groups nested too deeply"))
        );
    }
}
