//! Parquet for flat batches: every column a non-null integer, float or timestamp.
//!
//! Arrow's general writer first lists the index of every value to write (what nulls and
//! nesting need), then copies the values through that list into a scratch buffer for the
//! encoder: sixteen bytes written per value that a flat column does not need. Here each
//! column's values go from the array to its encoder as they are: the common columns to
//! [`pages`], which encodes them a block at a time, the others to the parquet crate's column
//! writer. Both are configured by the same `WriterProperties`, and the Arrow schema is
//! embedded as Arrow's writer embeds it, so the files are those `ArrowWriter` writes (tested
//! byte for byte).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType,
};
use bytes::Bytes;
use parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::writer::{ColumnCloseResult, ColumnWriter, get_column_writer};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnPath, SchemaDescPtr};

mod pages;

/// Whether every column of `schema` can be written flat with `props`: non-null numbers and
/// timestamps, without dictionaries (a dictionary column's pages wait inside the column writer
/// until it closes, where the row group's size could not count them), row groups cut by row
/// count (not bytes), pages not cut by content, no distinct counts.
pub fn supports(schema: &Schema, props: &WriterProperties) -> bool {
    // settings this writer does not follow: row groups cut by bytes, pages cut by content,
    // distinct counts in the statistics
    if props.max_row_group_bytes().is_some()
        || props.content_defined_chunking().is_some()
        || props.write_row_group_number_distinct_values()
    {
        return false;
    }
    schema.fields().iter().all(|f| {
        !f.is_nullable()
            && !props.dictionary_enabled(&ColumnPath::from(f.name().as_str()))
            && matches!(
                f.data_type(),
                DataType::Int32
                    | DataType::Int64
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Microsecond | TimeUnit::Nanosecond, _)
            )
    })
}

/// Encoded pages of one column chunk, held until its row group is written. Each write is
/// kept as it came: a page's data as the very buffer the encoder made (it arrives whole,
/// past `TrackedWrite`'s 8 KiB buffer), headers and small pages as a copy of that buffer.
#[derive(Default)]
struct Parts {
    parts: Vec<Bytes>,
    len: u64,
    /// The data of the page being written.
    page: Option<Bytes>,
}

impl Write for Parts {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let part = match self.page.take() {
            Some(page) if page.as_ptr() == buf.as_ptr() && page.len() == buf.len() => page,
            page => {
                self.page = page;
                Bytes::copy_from_slice(buf)
            }
        };
        self.parts.push(part);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Length for Parts {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Parts {
    type T = PartsReader;

    fn get_read(&self, start: u64) -> Result<PartsReader> {
        let mut reader = PartsReader {
            parts: self.parts.clone().into_iter(),
            current: Bytes::new(),
        };
        std::io::copy(&mut (&mut reader).take(start), &mut std::io::sink())?;
        Ok(reader)
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        if start + length as u64 > self.len {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at {start} of {} buffered",
                self.len
            )));
        }
        let mut bytes = Vec::with_capacity(length);
        self.get_read(start)?.take(length as u64).read_to_end(&mut bytes)?;
        Ok(bytes.into())
    }
}

/// Reads [`Parts`] in order.
struct PartsReader {
    parts: std::vec::IntoIter<Bytes>,
    current: Bytes,
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.parts.next() {
                Some(part) => self.current = part,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

type Pages = Arc<Mutex<TrackedWrite<Parts>>>;

struct PageBuffer(Pages);

impl PageWriter for PageBuffer {
    fn write_page(&mut self, page: CompressedPage) -> Result<PageWriteSpec> {
        let mut sink = self.0.lock().expect("page buffer");
        sink.inner_mut().page = Some(page.compressed_page().buffer().clone());
        let spec = SerializedPageWriter::new(&mut sink).write_page(page);
        sink.inner_mut().page = None;
        spec
    }

    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One column of the row group being written: encoded here ([`pages`]) where it can be,
/// else by the parquet crate's column writer.
enum Chunk {
    Encoded(Box<pages::Encoded>),
    Crate {
        writer: Box<ColumnWriter<'static>>,
        pages: Pages,
    },
}

/// A timestamp or 64-bit integer column's values.
fn ints(array: &ArrayRef) -> Option<&[i64]> {
    Some(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().values(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array.as_primitive::<TimestampMillisecondType>().values(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array.as_primitive::<TimestampMicrosecondType>().values(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array.as_primitive::<TimestampNanosecondType>().values(),
        _ => return None,
    })
}

impl Chunk {
    /// Values `[from, from + len)` of `array`.
    fn write(&mut self, array: &ArrayRef, from: usize, len: usize) -> Result<()> {
        let range = from..from + len;
        let (ints, t) = (ints(array), array.data_type());
        match self {
            Chunk::Encoded(e) => match (ints, t) {
                (Some(v), _) if e.takes_ints() => e.write_ints(&v[range]),
                (Some(v), _) => e.write_bytes(&v[range]),
                (None, DataType::Int32) => e.write_bytes(&array.as_primitive::<Int32Type>().values()[range]),
                (None, DataType::Float32) => e.write_bytes(&array.as_primitive::<Float32Type>().values()[range]),
                (None, DataType::Float64) => e.write_bytes(&array.as_primitive::<Float64Type>().values()[range]),
                _ => Err(mismatch(array)),
            },
            Chunk::Crate { writer, .. } => {
                match (&mut **writer, ints, t) {
                    (ColumnWriter::Int32ColumnWriter(w), _, DataType::Int32) => {
                        w.write_batch(&array.as_primitive::<Int32Type>().values()[range], None, None)?;
                    }
                    (ColumnWriter::Int64ColumnWriter(w), Some(v), _) => {
                        w.write_batch(&v[range], None, None)?;
                    }
                    (ColumnWriter::FloatColumnWriter(w), _, DataType::Float32) => {
                        w.write_batch(&array.as_primitive::<Float32Type>().values()[range], None, None)?;
                    }
                    (ColumnWriter::DoubleColumnWriter(w), _, DataType::Float64) => {
                        w.write_batch(&array.as_primitive::<Float64Type>().values()[range], None, None)?;
                    }
                    _ => return Err(mismatch(array)),
                }
                Ok(())
            }
        }
    }

    /// Rows already encoded into pages, and those pages' bytes.
    fn paged(&self) -> (u64, u64) {
        match self {
            Chunk::Encoded(e) => (e.rows_paged(), e.paged_bytes()),
            Chunk::Crate { writer, pages } => {
                let rows = match &**writer {
                    ColumnWriter::Int32ColumnWriter(w) => w.get_total_rows_written(),
                    ColumnWriter::Int64ColumnWriter(w) => w.get_total_rows_written(),
                    ColumnWriter::FloatColumnWriter(w) => w.get_total_rows_written(),
                    ColumnWriter::DoubleColumnWriter(w) => w.get_total_rows_written(),
                    _ => 0,
                };
                (rows, pages.lock().expect("page buffer").bytes_written() as u64)
            }
        }
    }

    /// The chunk's pages and metadata.
    fn close(self) -> Result<(Parts, ColumnCloseResult)> {
        match self {
            Chunk::Encoded(e) => e.close(),
            Chunk::Crate { writer, pages } => {
                let close = writer.close()?;
                let pages = std::mem::replace(
                    &mut *pages.lock().expect("page buffer"),
                    TrackedWrite::new(Parts::default()),
                );
                Ok((pages.into_inner()?, close))
            }
        }
    }
}

fn mismatch(array: &ArrayRef) -> ParquetError {
    ParquetError::General(format!(
        "a column of type {} does not match the writer's schema",
        array.data_type()
    ))
}

/// Writes flat batches (see [`supports`]) as Parquet to `W`, with the methods of
/// `ArrowWriter` that sinks use.
pub struct FlatWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    /// Each column's Arrow type, as batches must have it.
    types: Vec<DataType>,
    /// Each column's bytes per value before encoding.
    widths: Vec<usize>,
    props: WriterPropertiesPtr,
    schema: SchemaDescPtr,
    /// The row group being written: one chunk per column, or none before its first row.
    chunks: Vec<Chunk>,
    rows: usize,
    max_rows: usize,
}

impl<W: Write + Send> FlatWriter<W> {
    pub fn try_new(writer: W, schema: &Schema, props: Option<WriterProperties>) -> Result<Self> {
        let mut props = props.unwrap_or_default();
        let parquet = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(schema)?;
        add_encoded_arrow_schema_to_metadata(schema, &mut props);
        let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let props = Arc::new(props);
        let file = SerializedFileWriter::new(writer, parquet.root_schema_ptr(), props.clone())?;
        Ok(FlatWriter {
            file,
            types: schema.fields().iter().map(|f| f.data_type().clone()).collect(),
            widths: schema
                .fields()
                .iter()
                .map(|f| f.data_type().primitive_width().unwrap_or(8))
                .collect(),
            props,
            schema: Arc::new(parquet),
            chunks: Vec::new(),
            rows: 0,
            max_rows,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() != self.types.len() {
            return Err(ParquetError::General(format!(
                "a batch of {} columns does not match the writer's {}",
                batch.num_columns(),
                self.types.len()
            )));
        }
        for (c, (array, want)) in batch.columns().iter().zip(&self.types).enumerate() {
            if array.data_type() != want || array.null_count() > 0 {
                return Err(ParquetError::General(format!(
                    "column {c}: {} values{} do not match the writer's non-null {want}",
                    array.data_type(),
                    if array.null_count() > 0 { " with nulls" } else { "" },
                )));
            }
        }
        let (mut from, n) = (0, batch.num_rows());
        while from < n {
            if self.chunks.is_empty() {
                self.chunks = (0..self.schema.num_columns()).map(|c| self.chunk(c)).collect();
            }
            let len = (n - from).min(self.max_rows - self.rows);
            for (chunk, array) in self.chunks.iter_mut().zip(batch.columns()) {
                chunk.write(array, from, len)?;
            }
            self.rows += len;
            from += len;
            if self.rows == self.max_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn chunk(&self, c: usize) -> Chunk {
        let descr = self.schema.column(c);
        if let Some(plan) = pages::plan(&descr, &self.props) {
            return Chunk::Encoded(Box::new(pages::Encoded::new(descr, plan, &self.props)));
        }
        let pages: Pages = Arc::new(Mutex::new(TrackedWrite::new(Parts::default())));
        let writer = get_column_writer(descr, self.props.clone(), Box::new(PageBuffer(pages.clone())));
        Chunk::Crate {
            writer: Box::new(writer),
            pages,
        }
    }

    /// Bytes the row group being written holds: its pages, and the values not yet in a page
    /// at their width before encoding (an upper bound: a page holds at most 20,000 rows by
    /// default, so this errs by at most a page per column).
    pub fn in_progress_size(&self) -> usize {
        self.chunks
            .iter()
            .zip(&self.widths)
            .map(|(c, width)| {
                let (rows, bytes) = c.paged();
                bytes as usize + (self.rows - rows as usize) * width
            })
            .sum()
    }

    /// Writes the row group being written, if it has rows.
    pub fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.file.next_row_group()?;
        for chunk in self.chunks.drain(..) {
            let (pages, close) = chunk.close()?;
            group.append_column(&pages, close)?;
        }
        group.close()?;
        self.rows = 0;
        Ok(())
    }

    /// Writes the last row group and the footer.
    pub fn finish(&mut self) -> Result<()> {
        self.flush()?;
        self.file.finish()?;
        Ok(())
    }

    pub fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    pub fn inner(&self) -> &W {
        self.file.inner()
    }

    pub fn inner_mut(&mut self) -> &mut W {
        self.file.inner_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Float32Array, Float64Array, Int32Array, Int64Array, TimestampMicrosecondArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::Field;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, Encoding};
    use parquet::file::properties::EnabledStatistics;
    use parquet::schema::types::ColumnPath;

    fn batch(schema: &Arc<Schema>, from: usize, n: usize) -> RecordBatch {
        let rows = from..from + n;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| (i / 7) as i64))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    rows.clone()
                        .map(|i| 1_700_000_000_000_000 + (i as i64 * 7919) % 86_400_000_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Int32Array::from_iter_values(rows.clone().map(|i| (i % 13) as i32))),
            Arc::new(Float32Array::from_iter_values(rows.clone().map(|i| i as f32 / 3.0))),
            Arc::new(Float64Array::from_iter_values(
                rows.clone().map(|i| ((i * 31) % 1000) as f64 * 0.25),
            )),
            Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| (i % 5) as i64))),
            Arc::new(Int64Array::from_iter_values(
                rows.clone().map(|i| 1_000_000 - (i as i64) * 3 + (i % 4) as i64),
            )),
            // deltas of every width, wrapping past the ends of i64
            Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| {
                let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                if i % 3 == 0 {
                    x as i64
                } else {
                    (x >> (i % 64)) as i64 - 5
                }
            }))),
            Arc::new(Int64Array::from_iter_values(
                rows.clone().map(|i| (i as i64 * 7) % 1001 - 500),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.clone().map(|_| 1_767_225_600_000_000))
                    .with_timezone("UTC"),
            ),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.clone().map(|i| 1_700_000_000_000 + (i as i64 * 37) % 86_400_000),
            )),
            Arc::new(Float64Array::from_iter_values(rows.map(|i| i as f64 * 1.5))),
        ];
        // sliced arrays: values at an offset into their buffers
        let padded = RecordBatch::try_new(
            schema.clone(),
            columns
                .iter()
                .map(|c| arrow::compute::concat(&[c.as_ref(), c.as_ref()]).unwrap())
                .collect(),
        )
        .unwrap();
        padded.slice(n, n)
    }

    #[test]
    fn writes_the_bytes_arrow_writes() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("small", DataType::Int32, false),
            Field::new("f32", DataType::Float32, false),
            Field::new("f64", DataType::Float64, false),
            Field::new("count", DataType::Int64, false),
            Field::new("descending", DataType::Int64, false),
            Field::new("wild", DataType::Int64, false),
            Field::new("chunk", DataType::Int64, false),
            Field::new(
                "created",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("ms", DataType::Timestamp(TimeUnit::Millisecond, None), false),
            Field::new("plain", DataType::Float64, false),
        ]));
        let delta = ["user_id", "count", "descending", "wild", "created"];
        let props = || {
            let mut props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_dictionary_enabled(false)
                .set_max_row_group_row_count(Some(30_000))
                .set_write_batch_size(8192)
                .set_column_compression(ColumnPath::from("f32"), Compression::UNCOMPRESSED)
                .set_column_compression(ColumnPath::from("count"), Compression::UNCOMPRESSED)
                .set_column_statistics_enabled(ColumnPath::from("f64"), EnabledStatistics::None)
                .set_column_statistics_enabled(ColumnPath::from("count"), EnabledStatistics::None)
                .set_column_statistics_enabled(ColumnPath::from("chunk"), EnabledStatistics::Chunk)
                .set_column_compression(ColumnPath::from("plain"), Compression::UNCOMPRESSED)
                .set_column_statistics_enabled(ColumnPath::from("plain"), EnabledStatistics::None)
                // a column's own page limit: pages of "count" hold about 3,000 rows
                .set_column_data_page_row_count_limit(ColumnPath::from("count"), 3000);
            for name in delta {
                props = props.set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
            }
            props.build()
        };
        // every column but the 32-bit ones with statistics is encoded here
        let descr = ArrowSchemaConverter::new().convert(&schema).unwrap();
        let here: Vec<&str> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(c, _)| pages::plan(&descr.column(*c), &props()).is_some())
            .map(|(_, f)| f.name().as_str())
            .collect();
        assert_eq!(
            here,
            [
                "user_id",
                "ts",
                "f64",
                "count",
                "descending",
                "wild",
                "chunk",
                "created",
                "ms",
                "plain"
            ]
        );
        assert!(supports(&schema, &props()));
        // batches across row groups, two flushed early, and an empty one
        let mut arrow = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props())).unwrap();
        let mut flat = FlatWriter::try_new(Vec::new(), &schema, Some(props())).unwrap();
        for (i, (from, n)) in [
            (0, 25_000),
            (25_000, 50_000),
            (75_000, 0),
            (75_000, 1234),
            (76_234, 9000),
            (85_234, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let b = batch(&schema, from, n);
            arrow.write(&b).unwrap();
            flat.write(&b).unwrap();
            // a row group of a single row comes last
            if i == 3 || i == 4 {
                assert!(flat.in_progress_size() > 0);
                arrow.flush().unwrap();
                flat.flush().unwrap();
                assert_eq!(flat.in_progress_size(), 0);
            }
        }
        arrow.finish().unwrap();
        flat.finish().unwrap();
        assert_eq!(flat.bytes_written(), arrow.bytes_written());
        assert!(flat.inner() == arrow.inner(), "the files differ");
    }

    #[test]
    fn a_page_is_kept_not_copied() {
        let data = Bytes::from(vec![7u8; 100_000]);
        let page = parquet::column::page::Page::DataPage {
            buf: data.clone(),
            num_values: 12_500,
            encoding: Encoding::PLAIN,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let pages: Pages = Arc::new(Mutex::new(TrackedWrite::new(Parts::default())));
        let spec = PageBuffer(pages.clone())
            .write_page(CompressedPage::new(page, 100_000))
            .unwrap();
        let parts = std::mem::replace(&mut *pages.lock().unwrap(), TrackedWrite::new(Parts::default()))
            .into_inner()
            .unwrap();
        assert_eq!(parts.len, spec.bytes_written);
        assert!(
            parts.parts.iter().any(|p| p.as_ptr() == data.as_ptr()),
            "the page was copied"
        );
        let mut all = Vec::new();
        parts.get_read(0).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all.len() as u64, parts.len);
        assert!(all.ends_with(&data));
    }

    #[test]
    fn nullable_strings_seconds_and_dictionaries_are_not_flat() {
        let one = |t: DataType, nullable: bool| Schema::new(vec![Field::new("x", t, nullable)]);
        let plain = WriterProperties::builder().set_dictionary_enabled(false).build();
        assert!(supports(&one(DataType::Float64, false), &plain));
        assert!(!supports(&one(DataType::Float64, true), &plain));
        assert!(!supports(&one(DataType::Utf8, false), &plain));
        assert!(!supports(
            &one(DataType::Timestamp(TimeUnit::Second, None), false),
            &plain
        ));
        assert!(!supports(&one(DataType::Float64, false), &WriterProperties::default()));
        // row groups cut by bytes, distinct counts: Arrow's writer
        let plain_with =
            |b: parquet::file::properties::WriterPropertiesBuilder| b.set_dictionary_enabled(false).build();
        let f64_column = one(DataType::Float64, false);
        assert!(!supports(
            &f64_column,
            &plain_with(WriterProperties::builder().set_max_row_group_bytes(Some(1 << 20)))
        ));
        assert!(!supports(
            &f64_column,
            &plain_with(WriterProperties::builder().set_write_row_group_number_distinct_values(true))
        ));
    }

    #[test]
    fn a_batch_of_another_schema_is_an_error() {
        let schema = Schema::new(vec![Field::new("x", DataType::Float64, false)]);
        let mut flat = FlatWriter::try_new(Vec::new(), &schema, None).unwrap();
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        let err = flat.write(&other).unwrap_err();
        assert!(err.to_string().contains("do not match"), "{err}");
        let nullable = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let with_null =
            RecordBatch::try_new(nullable, vec![Arc::new(Float64Array::from(vec![Some(1.0), None]))]).unwrap();
        let err = flat.write(&with_null).unwrap_err();
        assert!(err.to_string().contains("with nulls"), "{err}");
    }
}
