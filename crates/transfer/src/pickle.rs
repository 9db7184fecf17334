//! A reader of Python pickles that never executes code: the pickle machine's opcodes are
//! interpreted over data only, and the only "calls" it accepts are the few that rebuild NumPy
//! arrays, dtypes and scalars, `collections.OrderedDict` and protocol 2's latin-1 bytes. Any other global (`os.system`,
//! a class of the old scripts) is refused with its name.
//!
//! serde-pickle was the first choice; it refuses every global, and NumPy arrays are pickled
//! through `numpy.core.multiarray._reconstruct` (protocols 2–4) or
//! `numpy.core.numeric._frombuffer` (protocol 5), so the old scripts' files could not be read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A Python value, as far as data files need.
#[derive(Debug, Clone)]
pub enum Py {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Rc<Vec<u8>>),
    List(Rc<RefCell<Vec<Py>>>),
    Tuple(Rc<Vec<Py>>),
    Dict(Rc<RefCell<PyDict>>),
    /// A module-level name, not yet called.
    Global(String),
    /// A NumPy dtype: its code (`f4`) and byte order (`<`, `>`, `|`, `=`).
    Dtype(Rc<RefCell<(String, char)>>),
    /// A NumPy array being rebuilt or rebuilt: shape and values.
    Array(Rc<RefCell<Option<NdArray>>>),
}

/// Nested containers are taken apart here, a level at a time, rather than by the recursive
/// drop glue: a pickle of a few hundred kilobytes can nest lists 100,000 deep, and dropping
/// them recursively would overflow the stack.
impl Drop for Py {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        take_children(self, &mut pending);
        while let Some(mut value) = pending.pop() {
            take_children(&mut value, &mut pending);
        }
    }
}

/// Moves the items of `value` into `out` when `value` is their last owner.
fn take_children(value: &mut Py, out: &mut Vec<Py>) {
    match value {
        Py::List(list) if Rc::strong_count(list) == 1 => {
            out.append(&mut list.borrow_mut());
        }
        Py::Tuple(items) => {
            if let Some(items) = Rc::get_mut(items) {
                out.append(items);
            }
        }
        Py::Dict(dict) if Rc::strong_count(dict) == 1 => {
            let mut dict = dict.borrow_mut();
            dict.index.clear();
            for (key, item) in dict.entries.drain(..) {
                out.push(key);
                out.push(item);
            }
        }
        _ => {}
    }
}

/// A dict in insertion order. Keys that Python compares by value (`str`, `int`) are found
/// through an index, so that building a dict of a million keys is linear; other keys are
/// kept as given.
#[derive(Debug, Default)]
pub struct PyDict {
    entries: Vec<(Py, Py)>,
    index: HashMap<DictKey, usize>,
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum DictKey {
    Str(String),
    Int(i64),
}

impl PyDict {
    fn key_of(key: &Py) -> Option<DictKey> {
        match key {
            Py::Str(text) => Some(DictKey::Str(text.clone())),
            Py::Int(n) => Some(DictKey::Int(*n)),
            _ => None,
        }
    }

    /// Sets `key` to `value`: in place for a key already there, else at the end.
    pub fn insert(&mut self, key: Py, value: Py) {
        let Some(hashed) = Self::key_of(&key) else {
            self.entries.push((key, value));
            return;
        };
        match self.index.get(&hashed) {
            Some(&at) => self.entries[at].1 = value,
            None => {
                self.index.insert(hashed, self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, (Py, Py)> {
        self.entries.iter()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl std::ops::Index<usize> for PyDict {
    type Output = (Py, Py);

    fn index(&self, at: usize) -> &(Py, Py) {
        &self.entries[at]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    /// Whether the values were float32 (kept exact through f64).
    pub float32: bool,
}

impl Py {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Bool(_) => "bool",
            Self::Int(_) => "int",
            Self::Float(_) => "float",
            Self::Str(_) => "str",
            Self::Bytes(_) => "bytes",
            Self::List(_) => "list",
            Self::Tuple(_) => "tuple",
            Self::Dict(_) => "dict",
            Self::Global(_) => "a global",
            Self::Dtype(_) => "numpy.dtype",
            Self::Array(_) => "numpy.ndarray",
        }
    }
}

const RECONSTRUCT: [&str; 2] = [
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
];
const FROMBUFFER: [&str; 2] = [
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
];
const SCALAR: [&str; 2] = [
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
];
const ORDERED_DICT: &str = "collections.OrderedDict";
const DTYPE: &str = "numpy.dtype";
const CODECS_ENCODE: &str = "_codecs.encode";

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Py>,
    marks: Vec<usize>,
    memo: HashMap<u64, Py>,
}

type R<T> = Result<T, String>;

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| format!("the pickle is truncated at byte {}", self.at))?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: usize) -> R<u64> {
        let bytes = self.take(n)?;
        let mut value = 0u64;
        for (i, b) in bytes.iter().enumerate() {
            value |= (*b as u64) << (8 * i);
        }
        Ok(value)
    }

    fn line(&mut self) -> R<&'a str> {
        let rest = &self.data[self.at..];
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("the pickle is truncated inside a text argument")?;
        self.at += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| "a text argument is not UTF-8".to_owned())
    }

    fn pop(&mut self) -> R<Py> {
        self.stack
            .pop()
            .ok_or_else(|| "the pickle pops an empty stack".to_owned())
    }

    fn pop_mark(&mut self) -> R<Vec<Py>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| "the pickle has no MARK to pop to".to_owned())?;
        if mark > self.stack.len() {
            return Err("the pickle's MARK is past its stack".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self) -> R<&mut Py> {
        self.stack
            .last_mut()
            .ok_or_else(|| "the pickle uses an empty stack".to_owned())
    }

    fn len(&mut self, n: usize) -> R<usize> {
        let len = self.uint(n)?;
        usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.data.len() - self.at)
            .ok_or_else(|| {
                format!(
                    "the pickle is truncated: {len} bytes announced at byte {}",
                    self.at
                )
            })
    }

    fn text(&mut self, n: usize) -> R<Py> {
        let len = self.len(n)?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map(Py::Str)
            .map_err(|_| "a string of the pickle is not UTF-8".to_owned())
    }

    fn bytes(&mut self, n: usize) -> R<Py> {
        let len = self.len(n)?;
        Ok(Py::Bytes(Rc::new(self.take(len)?.to_vec())))
    }

    fn append_to(&mut self, target: &Py, items: Vec<Py>) -> R<()> {
        match target {
            Py::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(format!("the pickle appends to a {}", other.type_name())),
        }
    }

    fn set_items(&mut self, target: &Py, items: Vec<Py>) -> R<()> {
        let Py::Dict(dict) = target else {
            return Err(format!("the pickle sets items of a {}", target.type_name()));
        };
        if !items.len().is_multiple_of(2) {
            return Err("the pickle sets a key without a value".into());
        }
        let mut dict = dict.borrow_mut();
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            dict.insert(key, value);
        }
        Ok(())
    }

    /// REDUCE and NEWOBJ: only the calls that rebuild data.
    fn call(&mut self, callable: Py, args: Py) -> R<Py> {
        let name = match &callable {
            Py::Global(name) => name.clone(),
            other => return Err(format!("the pickle calls a {}", other.type_name())),
        };
        let args = match &args {
            Py::Tuple(args) => Rc::clone(args),
            other => return Err(format!("`{name}` is called with a {}", other.type_name())),
        };
        if RECONSTRUCT.contains(&name.as_str()) {
            return Ok(Py::Array(Rc::new(RefCell::new(None))));
        }
        if name == DTYPE {
            let code = match args.first() {
                Some(Py::Str(code)) => code.clone(),
                _ => return Err("numpy.dtype is called without a type code".into()),
            };
            let (order, code) = split_order(&code);
            return Ok(Py::Dtype(Rc::new(RefCell::new((code.to_owned(), order)))));
        }
        if FROMBUFFER.contains(&name.as_str()) {
            let [buffer, dtype, shape, order] = &args[..] else {
                return Err("_frombuffer takes 4 arguments".into());
            };
            let fortran = matches!(order, Py::Str(o) if o == "F");
            return Ok(Py::Array(Rc::new(RefCell::new(Some(array_from(
                buffer, dtype, shape, fortran,
            )?)))));
        }
        if SCALAR.contains(&name.as_str()) {
            let [dtype, buffer] = &args[..] else {
                return Err("numpy scalar takes 2 arguments".into());
            };
            let array = array_from(buffer, dtype, &Py::Tuple(Rc::new(Vec::new())), false)?;
            return match array.values.first() {
                Some(value) => Ok(Py::Float(*value)),
                None => Err("an empty numpy scalar".into()),
            };
        }
        if name == CODECS_ENCODE {
            // Protocol 2 writes Python 3 bytes as `_codecs.encode(text, "latin1")`.
            return match &args[..] {
                [Py::Str(text), Py::Str(codec)] if codec == "latin1" || codec == "latin-1" => {
                    let bytes: Option<Vec<u8>> =
                        text.chars().map(|c| u8::try_from(c as u32).ok()).collect();
                    bytes
                        .map(|b| Py::Bytes(Rc::new(b)))
                        .ok_or_else(|| "_codecs.encode of text outside latin-1".to_owned())
                }
                _ => Err(refused(&name)),
            };
        }
        if name == ORDERED_DICT {
            let dict = Py::Dict(Rc::new(RefCell::new(PyDict::default())));
            if let Some(Py::List(pairs)) = args.first() {
                let mut items = Vec::new();
                for pair in pairs.borrow().iter() {
                    if let Py::List(kv) = pair {
                        items.extend(kv.borrow().iter().cloned());
                    } else if let Py::Tuple(kv) = pair {
                        items.extend(kv.iter().cloned());
                    }
                }
                self.set_items(&dict, items)?;
            }
            return Ok(dict);
        }
        Err(refused(&name))
    }

    fn build(&mut self, target: &Py, state: Py) -> R<()> {
        match target {
            Py::Dtype(dtype) => {
                // (version, byte order, subarray, names, fields, elsize, alignment, flags)
                if let Py::Tuple(state) = &state
                    && let Some(Py::Str(order)) = state.get(1)
                    && let Some(order) = order.chars().next()
                {
                    dtype.borrow_mut().1 = order;
                }
                Ok(())
            }
            Py::Array(array) => {
                // (version, shape, dtype, is_fortran, data)
                let Py::Tuple(state) = &state else {
                    return Err("a numpy array's state is not a tuple".into());
                };
                let [_, shape, dtype, fortran, data] = &state[..] else {
                    return Err("a numpy array's state has an unknown layout".into());
                };
                let fortran = matches!(fortran, Py::Bool(true) | Py::Int(1));
                *array.borrow_mut() = Some(array_from(data, dtype, shape, fortran)?);
                Ok(())
            }
            Py::Dict(_) => match &state {
                Py::Dict(items) => {
                    let items: Vec<Py> = items
                        .borrow()
                        .iter()
                        .flat_map(|(k, v)| [k.clone(), v.clone()])
                        .collect();
                    self.set_items(target, items)
                }
                _ => Ok(()),
            },
            other => Err(format!(
                "the pickle sets the state of a {}",
                other.type_name()
            )),
        }
    }
}

fn refused(name: &str) -> String {
    format!(
        "the pickle asks to call `{name}`: mnemo never runs code from a pickle, and reads only \
         lists, dicts, tuples, numbers, strings and NumPy arrays (save the data as those, or \
         as .npy + JSON Lines)"
    )
}

fn split_order(code: &str) -> (char, &str) {
    match code.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &code[1..]),
        _ => ('=', code),
    }
}

fn array_from(data: &Py, dtype: &Py, shape: &Py, fortran: bool) -> R<NdArray> {
    let shape: Vec<usize> = match shape {
        Py::Tuple(dims) => dims
            .iter()
            .map(|d| match d {
                Py::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => Err("a numpy shape holds a non-integer".to_owned()),
            })
            .collect::<R<_>>()?,
        Py::Int(n) if *n >= 0 => vec![*n as usize],
        _ => return Err("a numpy array has no shape".into()),
    };
    let (code, order) = match dtype {
        Py::Dtype(dtype) => {
            let dtype = dtype.borrow();
            (dtype.0.clone(), dtype.1)
        }
        Py::Str(code) => {
            let (order, code) = split_order(code);
            (code.to_owned(), order)
        }
        other => return Err(format!("a numpy array's dtype is a {}", other.type_name())),
    };
    let bytes: &[u8] = match data {
        Py::Bytes(bytes) => bytes,
        Py::Str(text) => text.as_bytes(),
        Py::List(_) => {
            return Err(format!(
                "a numpy array of dtype `{code}` holds Python objects: only numeric arrays are read"
            ));
        }
        other => return Err(format!("a numpy array's data is a {}", other.type_name())),
    };
    let big = order == '>';
    let size = match code.as_str() {
        "f4" | "f8" | "i4" | "i8" | "u4" | "u8" | "f2" | "i2" | "u2" | "i1" | "u1" => {
            code[1..].parse::<usize>().unwrap_or(1)
        }
        other => {
            return Err(format!(
                "numpy dtype `{other}` is not numeric: vectors must be float32 or float64"
            ));
        }
    };
    let needed = shape
        .iter()
        .try_fold(size, |total, dim| total.checked_mul(*dim))
        .filter(|needed| *needed == bytes.len());
    if needed.is_none() {
        return Err(format!(
            "a numpy array of shape {shape:?} and dtype `{code}` does not match the {} bytes the \
             pickle holds",
            bytes.len()
        ));
    }
    let mut values: Vec<f64> = bytes
        .chunks_exact(size)
        .map(|chunk| {
            let mut b = [0u8; 8];
            if big {
                for (i, byte) in chunk.iter().rev().enumerate() {
                    b[i] = *byte;
                }
            } else {
                b[..size].copy_from_slice(chunk);
            }
            match code.as_str() {
                "f4" => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                "f8" => f64::from_le_bytes(b),
                "f2" => half_to_f32(u16::from_le_bytes([b[0], b[1]])) as f64,
                "i1" => b[0] as i8 as f64,
                "i2" => i16::from_le_bytes([b[0], b[1]]) as f64,
                "i4" => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                "i8" => i64::from_le_bytes(b) as f64,
                "u1" => b[0] as f64,
                "u2" => u16::from_le_bytes([b[0], b[1]]) as f64,
                "u4" => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                _ => u64::from_le_bytes(b) as f64,
            }
        })
        .collect();
    if fortran && shape.len() == 2 {
        let (rows, columns) = (shape[0], shape[1]);
        let mut c_order = vec![0.0; values.len()];
        for r in 0..rows {
            for c in 0..columns {
                c_order[r * columns + c] = values[c * rows + r];
            }
        }
        values = c_order;
    }
    Ok(NdArray {
        shape,
        values,
        float32: code == "f4",
    })
}

fn half_to_f32(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exponent = ((bits >> 10) & 0x1f) as u32;
    let mantissa = (bits & 0x3ff) as u32;
    let value = match exponent {
        0 => (mantissa as f32) * 2f32.powi(-24),
        31 => {
            if mantissa == 0 {
                f32::INFINITY
            } else {
                f32::NAN
            }
        }
        _ => f32::from_bits(((exponent + 112) << 23) | (mantissa << 13)),
    };
    f32::from_bits(value.to_bits() | sign)
}

/// Reads a whole pickle (any protocol's binary opcodes and the common text ones) into a value.
pub fn load(data: &[u8]) -> Result<Py, String> {
    let mut m = Machine {
        data,
        at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let offset = m.at;
        let op = m
            .u8()
            .map_err(|_| "the pickle ends without STOP: it is truncated".to_owned())?;
        let step: R<()> = (|| {
            match op {
                0x80 => {
                    m.u8()?;
                }
                0x95 => {
                    m.uint(8)?;
                }
                b'.' => return Ok(()),
                b'(' => m.marks.push(m.stack.len()),
                b'0' => {
                    m.pop()?;
                }
                b'1' => {
                    m.pop_mark()?;
                }
                b'2' => {
                    let top = m.top()?.clone();
                    m.stack.push(top);
                }
                b'N' => m.stack.push(Py::None),
                0x88 => m.stack.push(Py::Bool(true)),
                0x89 => m.stack.push(Py::Bool(false)),
                b'J' => {
                    let v = m.uint(4)? as u32 as i32;
                    m.stack.push(Py::Int(v as i64));
                }
                b'K' => {
                    let v = m.u8()?;
                    m.stack.push(Py::Int(v as i64));
                }
                b'M' => {
                    let v = m.uint(2)?;
                    m.stack.push(Py::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        m.u8()? as usize
                    } else {
                        m.len(4)?
                    };
                    let bytes = m.take(n)?;
                    if n > 8 {
                        return Err("an integer of the pickle is larger than 64 bits".into());
                    }
                    let mut v: i64 = 0;
                    for (i, b) in bytes.iter().enumerate() {
                        v |= (*b as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    m.stack.push(Py::Int(v));
                }
                b'I' => {
                    let line = m.line()?.trim();
                    let value = match line {
                        "01" => Py::Bool(true),
                        "00" => Py::Bool(false),
                        _ => Py::Int(line.parse().map_err(|_| format!("bad INT `{line}`"))?),
                    };
                    m.stack.push(value);
                }
                b'L' => {
                    let line = m.line()?.trim().trim_end_matches('L');
                    m.stack.push(Py::Int(
                        line.parse().map_err(|_| format!("bad LONG `{line}`"))?,
                    ));
                }
                b'F' => {
                    let line = m.line()?.trim();
                    m.stack.push(Py::Float(
                        line.parse().map_err(|_| format!("bad FLOAT `{line}`"))?,
                    ));
                }
                b'G' => {
                    let bytes = m.take(8)?;
                    let mut b = [0u8; 8];
                    b.copy_from_slice(bytes);
                    m.stack.push(Py::Float(f64::from_be_bytes(b)));
                }
                b'X' => {
                    let v = m.text(4)?;
                    m.stack.push(v);
                }
                0x8c => {
                    let v = m.text(1)?;
                    m.stack.push(v);
                }
                0x8d => {
                    let v = m.text(8)?;
                    m.stack.push(v);
                }
                b'S' => {
                    let line = m.line()?.trim();
                    let inner = line
                        .strip_prefix(['\'', '"'])
                        .and_then(|l| l.strip_suffix(['\'', '"']))
                        .ok_or_else(|| format!("bad STRING `{line}`"))?;
                    m.stack.push(Py::Str(inner.to_owned()));
                }
                b'V' => {
                    let line = m.line()?.to_owned();
                    m.stack.push(Py::Str(line));
                }
                b'B' | b'T' => {
                    let v = m.bytes(4)?;
                    m.stack.push(v);
                }
                b'C' | b'U' => {
                    let v = m.bytes(1)?;
                    m.stack.push(v);
                }
                0x8e | 0x96 => {
                    let v = m.bytes(8)?;
                    m.stack.push(v);
                }
                b']' => m.stack.push(Py::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = m.pop_mark()?;
                    m.stack.push(Py::List(Rc::new(RefCell::new(items))));
                }
                b'a' => {
                    let item = m.pop()?;
                    let list = m.top()?.clone();
                    m.append_to(&list, vec![item])?;
                }
                b'e' => {
                    let items = m.pop_mark()?;
                    let list = m.top()?.clone();
                    m.append_to(&list, items)?;
                }
                b')' => m.stack.push(Py::Tuple(Rc::new(Vec::new()))),
                b't' => {
                    let items = m.pop_mark()?;
                    m.stack.push(Py::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if m.stack.len() < n {
                        return Err("the pickle builds a tuple from an empty stack".into());
                    }
                    let items = m.stack.split_off(m.stack.len() - n);
                    m.stack.push(Py::Tuple(Rc::new(items)));
                }
                b'}' => m
                    .stack
                    .push(Py::Dict(Rc::new(RefCell::new(PyDict::default())))),
                b'd' => {
                    let items = m.pop_mark()?;
                    let dict = Py::Dict(Rc::new(RefCell::new(PyDict::default())));
                    m.set_items(&dict, items)?;
                    m.stack.push(dict);
                }
                b's' => {
                    let value = m.pop()?;
                    let key = m.pop()?;
                    let dict = m.top()?.clone();
                    m.set_items(&dict, vec![key, value])?;
                }
                b'u' => {
                    let items = m.pop_mark()?;
                    let dict = m.top()?.clone();
                    m.set_items(&dict, items)?;
                }
                0x8f => m.stack.push(Py::List(Rc::new(RefCell::new(Vec::new())))),
                0x90 => {
                    let items = m.pop_mark()?;
                    let set = m.top()?.clone();
                    m.append_to(&set, items)?;
                }
                0x91 => {
                    let items = m.pop_mark()?;
                    m.stack.push(Py::List(Rc::new(RefCell::new(items))));
                }
                b'c' => {
                    let module = m.line()?.to_owned();
                    let name = m.line()?;
                    m.stack.push(Py::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = m.pop()?;
                    let module = m.pop()?;
                    match (&module, &name) {
                        (Py::Str(module), Py::Str(name)) => {
                            m.stack.push(Py::Global(format!("{module}.{name}")))
                        }
                        _ => return Err("STACK_GLOBAL without a module and a name".into()),
                    }
                }
                b'R' | 0x81 => {
                    let args = m.pop()?;
                    let callable = m.pop()?;
                    let value = m.call(callable, args)?;
                    m.stack.push(value);
                }
                0x92 => {
                    let _kwargs = m.pop()?;
                    let args = m.pop()?;
                    let callable = m.pop()?;
                    let value = m.call(callable, args)?;
                    m.stack.push(value);
                }
                b'b' => {
                    let state = m.pop()?;
                    let target = m.top()?.clone();
                    m.build(&target, state)?;
                }
                b'i' => {
                    let module = m.line()?.to_owned();
                    let name = m.line()?;
                    return Err(refused(&format!("{module}.{name}")));
                }
                b'o' => {
                    let items = m.pop_mark()?;
                    let name = match items.first() {
                        Some(Py::Global(name)) => name.clone(),
                        _ => "a class".into(),
                    };
                    return Err(refused(&name));
                }
                b'p' => {
                    let key = m.line()?.trim().parse().map_err(|_| "bad PUT".to_owned())?;
                    let top = m.top()?.clone();
                    m.memo.insert(key, top);
                }
                b'q' | b'r' | 0x94 => {
                    let key = match op {
                        b'q' => m.u8()? as u64,
                        b'r' => m.uint(4)?,
                        _ => m.memo.len() as u64,
                    };
                    let top = m.top()?.clone();
                    m.memo.insert(key, top);
                }
                b'g' | b'h' | b'j' => {
                    let key = match op {
                        b'g' => m.line()?.trim().parse().map_err(|_| "bad GET".to_owned())?,
                        b'h' => m.u8()? as u64,
                        _ => m.uint(4)?,
                    };
                    let value =
                        m.memo.get(&key).cloned().ok_or_else(|| {
                            format!("the pickle refers to memo {key}, never stored")
                        })?;
                    m.stack.push(value);
                }
                b'P' | b'Q' => {
                    return Err("the pickle refers to persistent objects outside the file".into());
                }
                0x82..=0x84 => {
                    return Err("the pickle uses the extension registry (copyreg), refused".into());
                }
                0x97 | 0x98 => {
                    return Err(
                        "the pickle's buffers were written out of band: not in the file".into(),
                    );
                }
                other => return Err(format!("unknown pickle opcode 0x{other:02x}")),
            }
            Ok(())
        })();
        step.map_err(|e| format!("byte {offset}: {e}"))?;
        if op == b'.' {
            return m.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_nested_100_000_deep_are_dropped_without_overflowing_the_stack() {
        // 100,000 EMPTY_LISTs, then 99,999 APPENDs: each list inside the one before it.
        let depth = 100_000;
        let mut data = b"\x80\x02".to_vec();
        data.extend(std::iter::repeat_n(b']', depth));
        data.extend(std::iter::repeat_n(b'a', depth - 1));
        data.push(b'.');
        let value = load(&data).unwrap();
        assert!(matches!(value, Py::List(_)));
        drop(value);
    }

    #[test]
    fn a_dict_of_a_million_keys_is_built_in_linear_time() {
        // pickle.dumps({i: i for i in range(N)}, protocol=2), written out: EMPTY_DICT, then
        // SETITEMS batches of 1,000 (as Python's pickler batches them).
        let n = 1_000_000u32;
        let mut data = b"\x80\x02}".to_vec();
        for batch in (0..n).collect::<Vec<_>>().chunks(1_000) {
            data.push(b'(');
            for &i in batch {
                for _ in 0..2 {
                    data.push(b'J');
                    data.extend_from_slice(&i.to_le_bytes());
                }
            }
            data.push(b'u');
        }
        data.push(b'.');
        // With a search of the keys for each insertion this did not finish in minutes.
        let value = load(&data).unwrap();
        let Py::Dict(dict) = &value else {
            panic!("not a dict")
        };
        assert_eq!(dict.borrow().len(), n as usize);
    }

    #[test]
    fn reads_plain_data_and_refuses_calls() {
        // pickle.dumps({"ids": [1, 2], "x": 1.5, "t": ("a", None, True)}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x03\x00\x00\x00idsq\x01]q\x02(K\x01K\x02eX\x01\x00\x00\x00xq\x03G?\xf8\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00tq\x04X\x01\x00\x00\x00aq\x05N\x88\x87q\x06u.";
        let value = load(data).unwrap();
        let Py::Dict(dict) = &value else {
            panic!("not a dict")
        };
        let dict = dict.borrow();
        assert_eq!(dict.len(), 3);
        assert!(matches!(dict[1].1, Py::Float(x) if x == 1.5));
        // pickle.dumps(os.system) style: cposix\nsystem\n(S'ls'\ntR.
        let evil = b"cposix\nsystem\n(S'ls'\ntR.";
        let message = load(evil).unwrap_err();
        assert!(message.contains("posix.system"), "{message}");
        assert!(message.contains("never runs code"), "{message}");
        assert!(
            load(b"\x80\x02]q\x00(K\x01")
                .unwrap_err()
                .contains("truncated")
        );
    }

    fn lcg(state: &mut u64) -> u8 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 56) as u8
    }

    #[test]
    fn no_input_makes_it_panic() {
        // Every prefix and single-byte corruption of a numpy pickle, and random bytes.
        let numpy = include_bytes!("testdata/numpy_p4.pkl");
        for end in 0..numpy.len() {
            let _ = load(&numpy[..end]);
        }
        let mut state = 1u64;
        for at in 0..numpy.len() {
            let mut bytes = numpy.to_vec();
            bytes[at] = lcg(&mut state);
            let _ = load(&bytes);
        }
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64).map(|_| lcg(&mut state)).collect();
            let _ = load(&bytes);
        }
        let value = load(numpy).unwrap();
        let Py::List(records) = &value else {
            panic!("not a list")
        };
        assert_eq!(records.borrow().len(), 2);
    }
}
