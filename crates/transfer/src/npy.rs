//! NumPy's `.npy` format (versions 1 to 3): a header, then the array's bytes. Read row by row
//! for 2-D float arrays; written with a fixed-width header whose row count is filled in at the
//! end, so an export can stream rows without counting them first.

use std::io::{Read, Seek, SeekFrom, Write};

pub const MAGIC: &[u8] = b"\x93NUMPY";
/// The largest vector a collection takes.
const MAX_COLUMNS: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    F32,
    F64,
}

impl Element {
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    pub element: Element,
    pub big_endian: bool,
    pub rows: usize,
    pub columns: usize,
    /// Bytes before the data.
    pub data_offset: u64,
}

fn field<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let at = dict.find(&format!("'{key}'"))?;
    let rest = &dict[at + key.len() + 2..];
    Some(rest.trim_start().strip_prefix(':')?.trim_start())
}

/// Reads and checks the header: a C-ordered 2-D array of float32 or float64.
pub fn read_header(reader: &mut impl Read) -> Result<NpyHeader, String> {
    let mut prefix = [0u8; 8];
    reader
        .read_exact(&mut prefix)
        .map_err(|_| "too short for a .npy file".to_owned())?;
    if &prefix[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let major = prefix[6];
    let (length, length_bytes) = match major {
        1 => {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b).map_err(|e| e.to_string())?;
            (u16::from_le_bytes(b) as usize, 2)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            reader.read_exact(&mut b).map_err(|e| e.to_string())?;
            (u32::from_le_bytes(b) as usize, 4)
        }
        other => return Err(format!(".npy format version {other} is not known")),
    };
    if length > 1 << 20 {
        return Err(format!("a header of {length} bytes is not a .npy header"));
    }
    let mut dict = vec![0u8; length];
    reader
        .read_exact(&mut dict)
        .map_err(|_| "the header is truncated".to_owned())?;
    let dict = String::from_utf8_lossy(&dict).into_owned();
    let descr = field(&dict, "descr")
        .and_then(|rest| rest.strip_prefix('\''))
        .and_then(|rest| rest.split('\'').next())
        .ok_or_else(|| format!("the header has no dtype: {dict}"))?;
    let (big_endian, element) = match descr {
        "<f4" | "=f4" => (false, Element::F32),
        ">f4" => (true, Element::F32),
        "<f8" | "=f8" => (false, Element::F64),
        ">f8" => (true, Element::F64),
        other => {
            return Err(format!(
                "dtype `{other}`: vectors must be float32 or float64 (`<f4`, `<f8`)"
            ));
        }
    };
    if field(&dict, "fortran_order").is_some_and(|rest| rest.starts_with("True")) {
        return Err(
            "the array is in Fortran order: save it with np.ascontiguousarray(a) first".into(),
        );
    }
    let shape = field(&dict, "shape")
        .and_then(|rest| rest.strip_prefix('('))
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| format!("the header has no shape: {dict}"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad shape `({shape})`"))?;
    let [rows, columns] = dims[..] else {
        return Err(format!(
            "the array has shape ({shape}): vectors must be a 2-D array (rows × dimensions)"
        ));
    };
    if columns == 0 || columns > MAX_COLUMNS {
        return Err(format!(
            "rows of {columns} numbers: a vector holds 1 to {MAX_COLUMNS}"
        ));
    }
    Ok(NpyHeader {
        element,
        big_endian,
        rows,
        columns,
        data_offset: (8 + length_bytes + length) as u64,
    })
}

/// Reads one row into `out` (cleared first).
pub fn read_row(
    reader: &mut impl Read,
    header: &NpyHeader,
    bytes: &mut Vec<u8>,
    out: &mut Vec<f32>,
) -> std::io::Result<()> {
    bytes.resize(header.columns * header.element.size(), 0);
    reader.read_exact(bytes)?;
    out.clear();
    match header.element {
        Element::F32 => out.extend(bytes.chunks_exact(4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            if header.big_endian {
                f32::from_be_bytes(b)
            } else {
                f32::from_le_bytes(b)
            }
        })),
        Element::F64 => out.extend(bytes.chunks_exact(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let value = if header.big_endian {
                f64::from_be_bytes(a)
            } else {
                f64::from_le_bytes(a)
            };
            value as f32
        })),
    }
    Ok(())
}

/// Width of the header this writer leaves, so that any row count fits when it is rewritten.
const WRITTEN_HEADER_LEN: usize = 118;

fn header_bytes(rows: usize, columns: usize) -> Vec<u8> {
    let dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
    let mut bytes = Vec::with_capacity(WRITTEN_HEADER_LEN + 10);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(WRITTEN_HEADER_LEN as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    // Padded with spaces and ended by a newline so the data starts at a multiple of 64.
    bytes.resize(10 + WRITTEN_HEADER_LEN - 1, b' ');
    bytes.push(b'\n');
    bytes
}

/// Writes float32 rows; `finish` writes the final row count into the header.
pub struct NpyWriter<W: Write + Seek> {
    out: W,
    columns: usize,
    rows: usize,
}

impl<W: Write + Seek> NpyWriter<W> {
    pub fn new(mut out: W, columns: usize) -> std::io::Result<Self> {
        out.write_all(&header_bytes(0, columns))?;
        Ok(Self {
            out,
            columns,
            rows: 0,
        })
    }

    pub fn write_row(&mut self, row: &[f32]) -> std::io::Result<()> {
        debug_assert_eq!(row.len(), self.columns);
        let mut bytes = Vec::with_capacity(row.len() * 4);
        for value in row {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        self.out.write_all(&bytes)?;
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header_bytes(self.rows, self.columns))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn writes_what_it_reads() {
        let mut writer = NpyWriter::new(Cursor::new(Vec::new()), 3).unwrap();
        writer.write_row(&[1.0, -2.5, 1e-40]).unwrap();
        writer.write_row(&[0.1, 0.2, 0.3]).unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        assert_eq!((10 + WRITTEN_HEADER_LEN) % 64, 0);
        let mut reader = Cursor::new(bytes);
        let header = read_header(&mut reader).unwrap();
        assert_eq!((header.rows, header.columns), (2, 3));
        assert_eq!(header.data_offset, (10 + WRITTEN_HEADER_LEN) as u64);
        let (mut scratch, mut row) = (Vec::new(), Vec::new());
        read_row(&mut reader, &header, &mut scratch, &mut row).unwrap();
        assert_eq!(row, [1.0, -2.5, 1e-40]);
    }

    #[test]
    fn refuses_what_is_not_a_matrix_of_floats() {
        let header = |dict: &str| {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[1, 0]);
            bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            bytes.extend_from_slice(dict.as_bytes());
            read_header(&mut Cursor::new(bytes))
        };
        let int = header("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }");
        assert!(int.unwrap_err().contains("float32"));
        let flat = header("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }");
        assert!(flat.unwrap_err().contains("2-D"));
        let fortran = header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }");
        assert!(fortran.unwrap_err().contains("Fortran"));
        assert!(read_header(&mut Cursor::new(b"PK\x03\x04".to_vec())).is_err());
    }
}
