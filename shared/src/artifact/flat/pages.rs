//! Column chunks whose pages are encoded here rather than by the parquet crate's column
//! writer, for the common flat columns: 64-bit integers (and timestamps) as `PLAIN` or
//! `DELTA_BINARY_PACKED`, with or without statistics, and floats or 32-bit integers as `PLAIN`
//! without statistics, uncompressed or snappy.
//!
//! The crate's writer encodes value by value through a general encoder: a delta column costs
//! about ten times what a block-at-a-time encoder does, and a plain one is copied three times
//! before it reaches a page. The bytes are the crate's: pages are cut where its column writer
//! cuts them (after the `write_batch_size` slice of a write that brings the page to
//! the column's `data_page_row_count_limit` rows, with [`plan`] ruling out a cut by size), encoded
//! as its encoders encode, and described by the same metadata, statistics, column index and
//! offset index, so the files are those `ArrowWriter` writes (tested byte for byte).

use arrow::datatypes::ToByteSlice;
use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, ColumnIndexBuilder, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;
use prost::encoding::encode_varint;

use super::Parts;

/// The most bytes a value takes in a delta page: 8, plus a block's header (at most a
/// 10-byte min delta and 4 bit widths) spread over its 256 values.
const DELTA_BYTES_PER_VALUE: usize = 9;

/// Values per block and per miniblock of the crate's delta encoder for 64-bit integers.
const BLOCK: usize = 256;
const MINIBLOCK: usize = 64;

/// Whether a column can be encoded here with `props`, and how: `None` leaves it to the crate.
pub(super) fn plan(descr: &ColumnDescPtr, props: &WriterProperties) -> Option<Plan> {
    let path = descr.path();
    if props.writer_version() != WriterVersion::PARQUET_1_0
        || descr.max_def_level() != 0
        || descr.max_rep_level() != 0
        || props.dictionary_enabled(path)
        || props.bloom_filter_properties(path).is_some()
        || props.write_page_header_statistics(path)
        || props.delta_binary_packed_encoder_options(path).is_some()
    {
        return None;
    }
    let snappy = match props.compression(path) {
        Compression::UNCOMPRESSED => false,
        Compression::SNAPPY => true,
        _ => return None,
    };
    let statistics = props.statistics_enabled(path);
    let encoding = props.encoding(path).unwrap_or(Encoding::PLAIN);
    let (ints, width) = match (descr.physical_type(), encoding) {
        (Type::INT64, Encoding::PLAIN | Encoding::DELTA_BINARY_PACKED) if descr.sort_order().is_signed() => (true, 8),
        (Type::INT64 | Type::DOUBLE, Encoding::PLAIN) if statistics == EnabledStatistics::None => (false, 8),
        (Type::INT32 | Type::FLOAT, Encoding::PLAIN) if statistics == EnabledStatistics::None => (false, 4),
        _ => return None,
    };
    // a page is cut by its rows, never by its size: the crate checks both after each slice
    // of `write_batch_size` values, and a page holds fewer than the row limit plus a slice
    let bytes_per_value = if encoding == Encoding::PLAIN {
        width
    } else {
        DELTA_BYTES_PER_VALUE
    };
    let most_rows = props
        .column_data_page_row_count_limit(path)
        .checked_add(props.write_batch_size())?;
    if most_rows.checked_mul(bytes_per_value)? >= props.column_data_page_size_limit(path) {
        return None;
    }
    Some(Plan {
        ints,
        delta: encoding == Encoding::DELTA_BINARY_PACKED,
        snappy,
        statistics,
    })
}

/// How a column's pages are made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// Values held as `i64` (for the delta encoder and statistics), else as bytes.
    ints: bool,
    delta: bool,
    snappy: bool,
    statistics: EnabledStatistics,
}

impl Plan {
    fn encoding(&self) -> Encoding {
        if self.delta {
            Encoding::DELTA_BINARY_PACKED
        } else {
            Encoding::PLAIN
        }
    }

    fn codec(&self) -> Compression {
        if self.snappy {
            Compression::SNAPPY
        } else {
            Compression::UNCOMPRESSED
        }
    }
}

/// Statistics of a 64-bit integer column's pages.
struct Summary {
    chunk: Option<(i64, i64)>,
    /// Every page's, for the column index.
    index: Option<ColumnIndexBuilder>,
    last: Option<(i64, i64)>,
    ascending: bool,
    descending: bool,
}

/// One column chunk being written: the open page's encoded values, the closed pages' bytes
/// and what the chunk's metadata needs.
pub(super) struct Encoded {
    descr: ColumnDescPtr,
    plan: Plan,
    batch: usize,
    page_rows: usize,
    /// The open page: its rows, encoded values (a delta page's behind room for its header),
    /// and smallest and largest value (integers with statistics).
    rows: usize,
    body: Vec<u8>,
    delta: Delta,
    range: Option<(i64, i64)>,
    /// The chunk's pages (from its first: a writer buffers 8 KiB, and a worker may have a
    /// chunk open for every column of every file it writes).
    pages: Option<TrackedWrite<Parts>>,
    summary: Option<Summary>,
    offsets: Option<OffsetIndexBuilder>,
    pages_written: i32,
    first_page: Option<u64>,
    compressed: u64,
    uncompressed: u64,
    rows_written: u64,
}

thread_local! {
    /// Room for a page as snappy compresses it (one per thread, not per column: a writer
    /// has a column chunk open for every file it writes).
    static SNAPPY: std::cell::RefCell<(snap::raw::Encoder, Vec<u8>)> =
        std::cell::RefCell::new((snap::raw::Encoder::new(), Vec::new()));
}

impl Encoded {
    pub(super) fn new(descr: ColumnDescPtr, plan: Plan, props: &WriterProperties) -> Encoded {
        let summary = (plan.statistics != EnabledStatistics::None).then(|| Summary {
            chunk: None,
            index: (plan.statistics == EnabledStatistics::Page).then(|| ColumnIndexBuilder::new(Type::INT64)),
            last: None,
            ascending: true,
            descending: true,
        });
        let page_rows = props.column_data_page_row_count_limit(descr.path());
        Encoded {
            descr,
            plan,
            batch: props.write_batch_size().max(1),
            page_rows,
            rows: 0,
            body: Vec::new(),
            delta: Delta::default(),
            range: None,
            pages: None,
            summary,
            offsets: (!props.offset_index_disabled()).then(OffsetIndexBuilder::new),
            pages_written: 0,
            first_page: None,
            compressed: 0,
            uncompressed: 0,
            rows_written: 0,
        }
    }

    /// Whether values are given as `i64` ([`Self::write_ints`]) or as bytes.
    pub(super) fn takes_ints(&self) -> bool {
        self.plan.ints
    }

    /// Appends 64-bit integers (a column that [`Self::takes_ints`]).
    pub(super) fn write_ints(&mut self, values: &[i64]) -> Result<()> {
        for slice in values.chunks(self.batch) {
            if self.summary.is_some() {
                let (lo, hi) = slice
                    .iter()
                    .fold(self.range.unwrap_or((i64::MAX, i64::MIN)), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                self.range = Some((lo, hi));
            }
            if self.plan.delta {
                if self.rows == 0 {
                    self.body.resize(HEADER_ROOM, 0);
                }
                self.delta.put(slice, &mut self.body);
            } else {
                self.body.extend_from_slice(slice.to_byte_slice());
            }
            self.added(slice.len())?;
        }
        Ok(())
    }

    /// Appends other values, as their little-endian bytes.
    pub(super) fn write_bytes<T: arrow::datatypes::ArrowNativeType>(&mut self, values: &[T]) -> Result<()> {
        for slice in values.chunks(self.batch) {
            self.body.extend_from_slice(slice.to_byte_slice());
            self.added(slice.len())?;
        }
        Ok(())
    }

    fn added(&mut self, rows: usize) -> Result<()> {
        self.rows += rows;
        if self.rows >= self.page_rows {
            self.page()?;
        }
        Ok(())
    }

    /// Rows already in pages.
    pub(super) fn rows_paged(&self) -> u64 {
        self.rows_written
    }

    /// Bytes of the pages written.
    pub(super) fn paged_bytes(&self) -> u64 {
        self.pages.as_ref().map_or(0, |p| p.bytes_written() as u64)
    }

    /// Writes the open page.
    fn page(&mut self) -> Result<()> {
        let rows = std::mem::take(&mut self.rows);
        if let (Some(summary), Some(range)) = (&mut self.summary, self.range.take()) {
            summary.page(range);
        }
        let mut body = std::mem::take(&mut self.body);
        let from = if self.plan.delta {
            // the header goes in the room left for it, ending where the blocks begin
            let header = self.delta.finish(&mut body);
            let from = HEADER_ROOM - header.len();
            body[from..HEADER_ROOM].copy_from_slice(&header);
            from
        } else {
            0
        };
        if !self.plan.snappy {
            // held until the row group is written: without the room it grew into (freed in
            // place; reserving a page's size up front instead saves copies but costs more
            // page faults than it saves)
            body.shrink_to_fit();
        }
        let mut body = Bytes::from(body).slice(from..);
        let uncompressed = body.len();
        if self.plan.snappy {
            body = SNAPPY.with(|cell| {
                let (encoder, room) = &mut *cell.borrow_mut();
                room.resize(snap::raw::max_compress_len(uncompressed), 0);
                let n = encoder
                    .compress(&body, room)
                    .map_err(|e| ParquetError::External(Box::new(e)))?;
                Ok::<_, ParquetError>(Bytes::copy_from_slice(&room[..n]))
            })?;
        }
        let page = Page::DataPage {
            buf: body.clone(),
            num_values: rows as u32,
            encoding: self.plan.encoding(),
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let pages = self.pages.get_or_insert_with(|| TrackedWrite::new(Parts::default()));
        pages.inner_mut().page = Some(body);
        let spec = SerializedPageWriter::new(pages).write_page(CompressedPage::new(page, uncompressed))?;
        pages.inner_mut().page = None;
        if let Some(offsets) = &mut self.offsets {
            offsets.append_row_count(rows as i64);
            offsets.append_unencoded_byte_array_data_bytes(None);
            offsets.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
        }
        self.first_page.get_or_insert(spec.offset);
        self.pages_written += 1;
        self.compressed += spec.compressed_size as u64;
        self.uncompressed += spec.uncompressed_size as u64;
        self.rows_written += rows as u64;
        Ok(())
    }

    /// Writes the open page and returns the chunk's pages and metadata.
    pub(super) fn close(mut self) -> Result<(Parts, ColumnCloseResult)> {
        if self.rows > 0 {
            self.page()?;
        }
        let (encoding, bytes_written) = (self.plan.encoding(), self.paged_bytes());
        let stats = (self.pages_written > 0).then_some(PageEncodingStats {
            page_type: PageType::DATA_PAGE,
            encoding,
            count: self.pages_written,
        });
        let mut metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(self.plan.codec())
            .set_encodings_mask(EncodingMask::new_from_encodings([Encoding::RLE, encoding].iter()))
            .set_page_encoding_stats(stats.into_iter().collect())
            .set_total_compressed_size(self.compressed as i64)
            .set_total_uncompressed_size(self.uncompressed as i64)
            .set_num_values(self.rows_written as i64)
            .set_data_page_offset(self.first_page.unwrap_or(0) as i64)
            .set_dictionary_page_offset(None);
        let mut column_index = None;
        if let Some(summary) = self.summary {
            let (min, max) = summary.chunk.unzip();
            let statistics = ValueStatistics::<i64>::new(min, max, None, Some(0), false)
                .with_nan_count(None)
                .with_backwards_compatible_min_max(true);
            metadata = metadata
                .set_statistics(Statistics::Int64(statistics))
                .set_unencoded_byte_array_data_bytes(None)
                .set_repetition_level_histogram(None)
                .set_definition_level_histogram(None);
            if let Some(mut index) = summary.index {
                index.set_boundary_order(match (summary.ascending, summary.descending) {
                    (true, _) => BoundaryOrder::ASCENDING,
                    (false, true) => BoundaryOrder::DESCENDING,
                    (false, false) => BoundaryOrder::UNORDERED,
                });
                column_index = Some(index.build()?);
            }
        }
        let close = ColumnCloseResult {
            bytes_written,
            rows_written: self.rows_written,
            metadata: metadata.build()?,
            bloom_filter: None,
            column_index,
            offset_index: self.offsets.map(OffsetIndexBuilder::build),
        };
        let pages = match self.pages {
            Some(pages) => pages.into_inner()?,
            None => Parts::default(),
        };
        Ok((pages, close))
    }
}

impl Summary {
    /// Takes in a page's smallest and largest value.
    fn page(&mut self, (min, max): (i64, i64)) {
        self.chunk = Some(match self.chunk {
            Some((lo, hi)) => (lo.min(min), hi.max(max)),
            None => (min, max),
        });
        if let Some(index) = &mut self.index {
            if let Some((last_min, last_max)) = self.last {
                self.ascending &= last_min <= min && last_max <= max;
                self.descending &= min <= last_min && max <= last_max;
            }
            self.last = Some((min, max));
            index.append(false, min.to_le_bytes().to_vec(), max.to_le_bytes().to_vec(), 0, None);
        }
    }
}

/// Bytes left at the start of a delta page for its header: block size (2), miniblocks per
/// block (1), value count (at most 5) and first value (at most 10).
const HEADER_ROOM: usize = 18;

/// A `DELTA_BINARY_PACKED` page being encoded: a header (block size, miniblocks per block,
/// value count, first value), then blocks of 256 deltas, each its smallest delta and the bit
/// width of each of its four miniblocks, then the miniblocks' deltas less the smallest,
/// bit-packed (the last miniblock padded with zeros, empty ones given width 0).
#[derive(Debug, Default)]
struct Delta {
    values: u64,
    first: i64,
    last: i64,
    /// The block being filled.
    deltas: Vec<i64>,
}

impl Delta {
    fn put(&mut self, mut values: &[i64], out: &mut Vec<u8>) {
        if self.values == 0 {
            let Some((&first, rest)) = values.split_first() else {
                return;
            };
            (self.first, self.last, self.values) = (first, first, 1);
            values = rest;
        }
        self.values += values.len() as u64;
        while !values.is_empty() {
            let n = values.len().min(BLOCK - self.deltas.len());
            let mut last = self.last;
            self.deltas.extend(values[..n].iter().map(|&v| {
                let d = v.wrapping_sub(last);
                last = v;
                d
            }));
            self.last = last;
            values = &values[n..];
            if self.deltas.len() == BLOCK {
                block(&self.deltas, out);
                self.deltas.clear();
            }
        }
    }

    /// Appends the last block and returns the page's header; ready for the next page.
    fn finish(&mut self, out: &mut Vec<u8>) -> Vec<u8> {
        if !self.deltas.is_empty() {
            block(&self.deltas, out);
            self.deltas.clear();
        }
        let mut header = Vec::with_capacity(HEADER_ROOM);
        encode_varint(BLOCK as u64, &mut header);
        encode_varint((BLOCK / MINIBLOCK) as u64, &mut header);
        encode_varint(self.values, &mut header);
        encode_varint(zigzag(self.first), &mut header);
        self.values = 0;
        header
    }
}

/// Appends a block of deltas (at least one, at most 256).
fn block(deltas: &[i64], out: &mut Vec<u8>) {
    let min = deltas.iter().copied().min().expect("a block has a delta");
    encode_varint(zigzag(min), out);
    let widths_at = out.len();
    out.extend_from_slice(&[0; BLOCK / MINIBLOCK]);
    for (m, mini) in deltas.chunks(MINIBLOCK).enumerate() {
        let mut packed = [0u64; MINIBLOCK];
        let mut or = 0;
        for (p, &d) in packed.iter_mut().zip(mini) {
            *p = d.wrapping_sub(min) as u64;
            or |= *p;
        }
        let width = 64 - or.leading_zeros();
        out[widths_at + m] = width as u8;
        pack(&packed, width, out);
    }
}

/// Packs 64 values of `width` bits, least significant bit first.
fn pack(values: &[u64; MINIBLOCK], width: u32, out: &mut Vec<u8>) {
    // one copy of the loop per width, every shift and word index a constant
    macro_rules! widths {
        ($($w:literal)*) => {
            match width {
                0 => {}
                $($w => pack_as::<$w>(values, out),)*
                _ => unreachable!("a width is at most 64 bits"),
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
        33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64);
}

#[inline(always)]
fn pack_as<const W: usize>(values: &[u64; MINIBLOCK], out: &mut Vec<u8>) {
    let mut words = [0u64; W];
    // written out for each of the 64 values (a loop stays a loop, its shifts computed)
    macro_rules! each {
        ($($j:literal)*) => {$({
            let (word, shift) = ($j * W / 64, $j * W % 64);
            words[word] |= values[$j] << shift;
            if shift + W > 64 {
                // the bits that did not fit
                words[word + 1] |= values[$j] >> (64 - shift);
            }
        })*};
    }
    each!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
    out.extend_from_slice(words.to_byte_slice());
}

/// Zigzag: small magnitudes, either sign, to small unsigned numbers (written as ULEB128
/// varints, `encode_varint`, as Parquet and protobuf both write them).
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
