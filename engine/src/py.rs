//! The extension module `tlspcap_engine`: the reader and the decoder behind one Python class.
//!
//! `Capture` reads a stream through a Python `read(n)` callable (gzip is decompressed by the
//! caller, in Python, so errors read the same on both paths) and hands Python batches of the
//! values the pure path's reader and decoder would have produced, in the same order:
//! `TcpSegment` and `IcmpError` instances (built by calling the classes it was given), and the
//! tuples `("progress", bytes_read, frame)` and `("secret", secrets_type, data)`.
//! `tlspcap.capture.engine` is the Python side; nothing here opens files except [`scan`], the
//! benchmark's floor.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::decode::PacketDecoder;
use crate::lane::{DirOffer, DirSummary, Event, Lane, Offer, Summary};
use crate::model::{Anomaly, Decoded, IcmpError, TcpSegment};
use crate::reader::{CaptureReader, OpenError, ReadFn};

create_exception!(
    tlspcap_engine,
    OpenFailure,
    PyException,
    "The stream is not a capture the engine reads: args are (kind, ...), see `Capture`."
);

/// Items per batch handed to Python. Small, because the fast lane (`crate::lane`) can be given
/// connections only between batches (the engine reads a batch ahead of Python). Measured: of the
/// 100 MB bench capture's segments, batches of 1,024 items let the lane absorb 16 %, of 64
/// items 52 %, of 16 items 64 %; the whole analysis of the 14 MB capture (callgrind, without
/// output) took 1.654 G instructions without the lane, 1.508 G with 64 items, 1.477 G with 16
/// and 1.482 G with 8.
const BATCH: usize = 16;

/// Packets read per batch at most, whatever they yield: Python gets control back often (Ctrl-C,
/// progress) even in a long run of packets without TCP.
const BATCH_PACKETS: usize = 16384;

/// A Python exception raised by the stream's `read` that is not a read error (those become the
/// file's `read_error` anomaly, as in `ByteSource`): it is re-raised after the batch.
type Pending = Rc<RefCell<Option<PyErr>>>;

fn python_reader(read: PyObject, pending: Pending) -> ReadFn {
    Box::new(move |n: usize| {
        Python::with_gil(|py| {
            let err = match read.call1(py, (n,)) {
                Ok(obj) => match obj.downcast_bound::<PyBytes>(py) {
                    Ok(b) => return Ok(b.as_bytes().to_vec()),
                    Err(e) => PyErr::from(e),
                },
                Err(e) => e,
            };
            if is_read_error(py, &err) {
                let name = err
                    .get_type(py)
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "Error".to_string());
                let text = err
                    .value(py)
                    .str()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(format!("{name}: {text}"));
            }
            *pending.borrow_mut() = Some(err);
            Err("interrupted".to_string())
        })
    })
}

/// OSError, EOFError or zlib.error: what `ByteSource` turns into a `read_error` anomaly.
fn is_read_error(py: Python<'_>, err: &PyErr) -> bool {
    if err.is_instance_of::<pyo3::exceptions::PyOSError>(py)
        || err.is_instance_of::<pyo3::exceptions::PyEOFError>(py)
    {
        return true;
    }
    match py.import("zlib").and_then(|m| m.getattr("error")) {
        Ok(cls) => err.value(py).is_instance(&cls).unwrap_or(false),
        Err(_) => false,
    }
}

fn open_failure(err: OpenError) -> PyErr {
    match err {
        OpenError::Capture { reason, offset } => OpenFailure::new_err(("capture", reason, offset)),
        OpenError::ForeignSnoop { inside } => OpenFailure::new_err(("snoop", inside)),
        OpenError::Unrecognised {
            head,
            inside,
            reason,
        } => Python::with_gil(|py| {
            OpenFailure::new_err((
                "unrecognised",
                PyBytes::new(py, &head).unbind(),
                inside,
                reason,
            ))
        }),
    }
}

fn anomaly_tuples<'py>(py: Python<'py>, list: &[Anomaly]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(
        py,
        list.iter()
            .map(|a| (a.name.as_str(), a.frame, a.detail.as_str())),
    )
}

/// One capture being read and decoded (see the module documentation).
#[pyclass(unsendable)]
struct Capture {
    reader: CaptureReader,
    decoder: PacketDecoder,
    segment_cls: PyObject,
    icmp_cls: PyObject,
    pending: Pending,
    tunnels: HashMap<Arc<str>, Py<PyString>>,
    out: Vec<Decoded>,
    secrets_sent: usize,
    progress_every: u64,
    counter: Option<PyObject>,
    packets: u64,
    first_ts: Option<f64>,
    last_ts: Option<f64>,
    done: bool,
    lane: Lane,
    released: Vec<Summary>,
}

impl Capture {
    fn tunnel(&mut self, py: Python<'_>, tunnel: &Option<Arc<str>>) -> PyObject {
        match tunnel {
            None => py.None(),
            Some(name) => self
                .tunnels
                .entry(name.clone())
                .or_insert_with(|| PyString::new(py, name).unbind())
                .clone_ref(py)
                .into_any(),
        }
    }

    fn segment(&mut self, py: Python<'_>, s: &TcpSegment) -> PyResult<PyObject> {
        let tunnel = self.tunnel(py, &s.tunnel);
        let args = PyTuple::new(
            py,
            [
                s.frame.into_pyobject(py)?.into_any().unbind(),
                s.ts.into_pyobject(py)?.into_any().unbind(),
                PyBytes::new(py, &s.src).into_any().unbind(),
                s.sport.into_pyobject(py)?.into_any().unbind(),
                PyBytes::new(py, &s.dst).into_any().unbind(),
                s.dport.into_pyobject(py)?.into_any().unbind(),
                s.seq.into_pyobject(py)?.into_any().unbind(),
                s.ack.into_pyobject(py)?.into_any().unbind(),
                s.flags.into_pyobject(py)?.into_any().unbind(),
                PyBytes::new(py, &s.payload).into_any().unbind(),
                s.missing.into_pyobject(py)?.into_any().unbind(),
                s.ttl.into_pyobject(py)?.into_any().unbind(),
                s.ip_id.into_pyobject(py)?.into_any().unbind(),
                s.window.into_pyobject(py)?.into_any().unbind(),
                PyBytes::new(py, &s.options).into_any().unbind(),
                tunnel,
                s.fragments.into_pyobject(py)?.into_any().unbind(),
            ],
        )?;
        self.segment_cls.call1(py, args)
    }

    fn icmp(&mut self, py: Python<'_>, e: &IcmpError) -> PyResult<PyObject> {
        let tunnel = self.tunnel(py, &e.tunnel);
        let args = PyTuple::new(
            py,
            [
                e.frame.into_pyobject(py)?.into_any().unbind(),
                e.ts.into_pyobject(py)?.into_any().unbind(),
                e.version.into_pyobject(py)?.into_any().unbind(),
                e.icmp_type.into_pyobject(py)?.into_any().unbind(),
                e.code.into_pyobject(py)?.into_any().unbind(),
                PyBytes::new(py, &e.router).into_any().unbind(),
                e.ttl.into_pyobject(py)?.into_any().unbind(),
                PyBytes::new(py, &e.src).into_any().unbind(),
                e.sport.into_pyobject(py)?.into_any().unbind(),
                PyBytes::new(py, &e.dst).into_any().unbind(),
                e.dport.into_pyobject(py)?.into_any().unbind(),
                e.seq.into_pyobject(py)?.into_any().unbind(),
                e.mtu.into_pyobject(py)?.into_any().unbind(),
                tunnel,
            ],
        )?;
        self.icmp_cls.call1(py, args)
    }

    /// Append the summaries of the connections the lane released, as
    /// `("lane", summary)` items (see [`summary_tuple`]).
    fn hand_over_released(&mut self, py: Python<'_>, items: &Bound<'_, PyList>) -> PyResult<()> {
        for summary in self.released.drain(..) {
            items.append(("lane", summary_tuple(py, &summary)?))?;
        }
        Ok(())
    }

    fn raise_pending(&self) -> PyResult<()> {
        match self.pending.borrow_mut().take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

#[pymethods]
impl Capture {
    /// Open a capture: `read(n)` gives the next bytes of the (decompressed) stream, `prefix`
    /// the bytes already sniffed from it, `inside` is `" inside gzip"` or `""`; the two classes
    /// build the items; a progress item comes before every packet whose frame number is a
    /// multiple of `progress_every` (`tlspcap.analyze.PROGRESS_PACKETS`), with the bytes read
    /// so far: `counter.count` when a counter is given (the compressed bytes of a gzip file),
    /// else the bytes `read` gave. Raises `OpenFailure` with args `("capture", reason, offset)`,
    /// `("snoop", inside)` or `("unrecognised", head, inside, reason)`.
    #[new]
    #[pyo3(signature = (read, prefix, inside, segment_cls, icmp_cls, progress_every, counter))]
    fn new(
        read: PyObject,
        prefix: Vec<u8>,
        inside: &str,
        segment_cls: PyObject,
        icmp_cls: PyObject,
        progress_every: u64,
        counter: Option<PyObject>,
    ) -> PyResult<Self> {
        let pending: Pending = Rc::new(RefCell::new(None));
        let opened = CaptureReader::open(python_reader(read, pending.clone()), prefix, inside);
        if let Some(err) = pending.borrow_mut().take() {
            return Err(err);
        }
        let reader = opened.map_err(open_failure)?;
        Ok(Capture {
            reader,
            decoder: PacketDecoder::new(),
            segment_cls,
            icmp_cls,
            pending,
            tunnels: HashMap::new(),
            out: Vec::new(),
            secrets_sent: 0,
            progress_every: progress_every.max(1),
            counter,
            packets: 0,
            first_ts: None,
            last_ts: None,
            done: false,
            lane: Lane::default(),
            released: Vec::new(),
        })
    }

    /// The next items (possibly none, after a long run of packets without TCP), or `None` once
    /// the capture is read and decoded.
    fn next_batch<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        if self.done {
            return Ok(None);
        }
        let items = PyList::empty(py);
        let mut read = 0usize;
        while items.len() < BATCH && read < BATCH_PACKETS {
            read += 1;
            self.out.clear();
            let (frame, ts) = match self.reader.next_packet() {
                None => {
                    self.raise_pending()?;
                    self.decoder.finish();
                    self.done = true;
                    self.lane.release_all(&mut self.released);
                    self.hand_over_released(py, &items)?;
                    break;
                }
                Some(packet) => {
                    self.decoder.decode(&packet, &mut self.out);
                    (packet.frame, packet.ts)
                }
            };
            if frame % self.progress_every == 0 {
                let read = match &self.counter {
                    Some(counter) => counter.getattr(py, "count")?,
                    None => self
                        .reader
                        .total_read()
                        .into_pyobject(py)?
                        .into_any()
                        .unbind(),
                };
                items.append(("progress", read, frame))?;
            }
            let secrets = self.reader.secrets();
            if secrets.len() > self.secrets_sent {
                for (kind, data) in &secrets[self.secrets_sent..] {
                    items.append(("secret", *kind, PyBytes::new(py, data)))?;
                }
                self.secrets_sent = secrets.len();
            }
            self.packets += 1;
            if self.first_ts.is_none() {
                self.first_ts = Some(ts);
            }
            self.last_ts = Some(ts);
            let out = std::mem::take(&mut self.out);
            for item in &out {
                let obj = match item {
                    Decoded::Segment(s) => {
                        if self.lane.segment(s, &mut self.released) {
                            continue;
                        }
                        self.hand_over_released(py, &items)?;
                        self.segment(py, s)?
                    }
                    Decoded::Icmp(e) => self.icmp(py, e)?,
                };
                items.append(obj)?;
            }
            self.out = out;
        }
        self.raise_pending()?;
        Ok(if self.done && items.is_empty() {
            None
        } else {
            Some(items)
        })
    }

    /// `pcap`, `pcap-ns`, `pcapng` or `snoop`, with `+gzip` when compressed.
    #[getter]
    fn format(&self) -> String {
        self.reader.format().to_string()
    }

    /// Packet records read so far.
    #[getter]
    fn packets(&self) -> u64 {
        self.packets
    }

    /// Time of the first packet record (None before any).
    #[getter]
    fn first_ts(&self) -> Option<f64> {
        self.first_ts
    }

    /// Hold connections in the fast lane (see `crate::lane`): `next_sweep`, `sweep_seconds`
    /// and `max_record` are the tracker's and the record reader's, `offers` are
    /// `(index, src, sport, dst, dport, dir0, dir1, room)` with each `dir` as
    /// `(absorb, log_room, data, expected, skip, skip_version, skip_length, explicit)`.
    fn lane_offer(
        &mut self,
        next_sweep: f64,
        sweep_seconds: f64,
        max_record: u32,
        offers: Vec<OfferTuple>,
    ) {
        self.lane.configure(next_sweep, sweep_seconds, max_record);
        for (index, src, sport, dst, dport, d0, d1, room) in offers {
            self.lane.offer(Offer {
                index,
                key: (src, sport, dst, dport),
                dirs: [dir_offer(d0), dir_offer(d1)],
                room,
            });
        }
    }

    /// Release every connection held: their summaries, in index order.
    fn lane_release<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut out = Vec::new();
        self.lane.release_all(&mut out);
        let list = PyList::empty(py);
        for summary in &out {
            list.append(summary_tuple(py, summary)?)?;
        }
        Ok(list)
    }

    /// Time of the last packet record read.
    #[getter]
    fn last_ts(&self) -> Option<f64> {
        self.last_ts
    }

    /// The file ended inside a record or block.
    #[getter]
    fn truncated(&self) -> bool {
        self.reader.truncated()
    }

    /// Bytes obtained from `read` so far (plus the prefix).
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.reader.total_read()
    }

    /// The reader's anomalies as `(name, frame, detail)` tuples.
    fn reader_anomalies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        anomaly_tuples(py, self.reader.anomalies())
    }

    /// The decoder's anomalies as `(name, frame, detail)` tuples (complete once read).
    fn decoder_anomalies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        anomaly_tuples(py, &self.decoder.anomalies())
    }

    /// Every Decryption Secrets Block read, `(secrets_type, data)`.
    fn secrets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.reader
                .secrets()
                .iter()
                .map(|(k, d)| (*k, PyBytes::new(py, d))),
        )
    }
}

type DirTuple = (bool, u32, bool, u32, u32, u16, u16, u32);
type OfferTuple = (u64, Vec<u8>, u16, Vec<u8>, u16, DirTuple, DirTuple, u32);

fn dir_offer(d: DirTuple) -> DirOffer {
    let (absorb, log_room, data, expected, skip, skip_version, skip_length, explicit) = d;
    DirOffer {
        absorb,
        log_room,
        data,
        expected,
        skip,
        skip_version,
        skip_length,
        explicit,
    }
}

fn dir_tuple<'py>(py: Python<'py>, d: &DirSummary) -> PyResult<Bound<'py, PyTuple>> {
    let log = PyList::empty(py);
    for r in &d.log {
        log.append((
            r.frame,
            r.ts,
            r.flags,
            r.seq,
            r.ack,
            r.length,
            r.ttl,
            r.ip_id,
            r.window,
            PyBytes::new(py, &r.options),
        ))?;
    }
    (
        d.packets,
        d.last_frame,
        d.last_ack,
        d.bytes,
        d.retransmitted,
        d.skip,
        d.skip_version,
        d.skip_length,
        log,
    )
        .into_pyobject(py)
}

/// A summary for Python: `(index, dir0, dir1, last, events)`, each `dir` as `(packets,
/// last_frame, last_ack, bytes, retransmitted, skip, skip_version, skip_length, log)`, `last`
/// as `(frame, ts)` or None, each event as `(0, dir, version, length, frame, ts)` (one record)
/// or `(1, dir, count, bytes, last_frame, last_ts)` (a run).
fn summary_tuple<'py>(py: Python<'py>, s: &Summary) -> PyResult<Bound<'py, PyTuple>> {
    let events = PyList::empty(py);
    for e in &s.events {
        match *e {
            Event::Record {
                dir,
                version,
                length,
                frame,
                ts,
            } => events.append((0u8, dir, u64::from(version), u64::from(length), frame, ts))?,
            Event::Run {
                dir,
                count,
                bytes,
                last_frame,
                last_ts,
            } => events.append((1u8, dir, count, bytes, last_frame, last_ts))?,
        }
    }
    (
        s.index,
        dir_tuple(py, &s.dirs[0])?,
        dir_tuple(py, &s.dirs[1])?,
        s.last,
        events,
    )
        .into_pyobject(py)
}

/// The engine's bare loop over a plain (uncompressed) capture file: read and decode every
/// packet, make no Python object. Returns `(packets, segments, payload_bytes)`; the floor that
/// `make bench` shows beside the full analysis.
#[pyfunction]
fn scan(py: Python<'_>, path: std::path::PathBuf) -> PyResult<(u64, u64, u64)> {
    py.allow_threads(|| crate::scan_file(&path))
        .map_err(pyo3::exceptions::PyOSError::new_err)
}

/// Panic with `message`: lets the tests check that a panic becomes the file's error.
#[pyfunction]
fn _panic(message: &str) {
    panic!("{message}");
}

/// The compiled packet stage of tlspcap.
#[pymodule]
fn tlspcap_engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BATCH", BATCH)?;
    m.add("OpenFailure", m.py().get_type::<OpenFailure>())?;
    m.add_class::<Capture>()?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(_panic, m)?)?;
    Ok(())
}
