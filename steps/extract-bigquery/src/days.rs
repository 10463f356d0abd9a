//! The day partitions being written: one Parquet file per fetched UTC day,
//! `<output>/date=YYYY-MM-DD/part-00000.parquet`, each a [`ParquetSink`] (it appears whole
//! when finished, never if the run fails or is stopped), fed a batch at a time as the result's
//! rows for its day arrive in any order. Once a day's new file is there, the day's other files
//! (an earlier writer's parts) are deleted: a rerun replaces the day whole.

use std::collections::{BTreeMap, BTreeSet};

use arrow::record_batch::RecordBatch;
use featurekit::artifact::{Location, ParquetSink, WriteOptions};
use featurekit::exit::Result;

use crate::decode::{Cell, Layout, Rows};
use crate::plan::{Day, day_name, parse_partition};

/// The one file of a day this step writes.
pub const PART: &str = "part-00000.parquet";
/// Rows of a day gathered before they are encoded.
const BATCH_ROWS: usize = 8192;
/// Encoded bytes a day's row group may hold before it is flushed: a first run writes 31 days
/// at once, so this bounds the memory.
const ROW_GROUP_BYTES: usize = 2 * 1024 * 1024;

/// The days of the output that hold a file: those a run keeps unless it refreshes them.
pub async fn present(output: &Location) -> Result<BTreeSet<Day>> {
    let objects = output.list().await?;
    let root = output.path();
    Ok(objects
        .iter()
        .filter(|m| m.location.as_ref().ends_with(".parquet"))
        .filter_map(|m| {
            m.location
                .prefix_match(root)?
                .next()
                .and_then(|p| parse_partition(p.as_ref()))
        })
        .collect())
}

/// The location of a day's partition.
pub fn partition(output: &Location, day: Day) -> Location {
    output.join(&format!("date={}", day_name(day)))
}

/// The open files of the days being fetched.
pub struct Days {
    output: Location,
    layout: Layout,
    options: WriteOptions,
    open: BTreeMap<Day, Open>,
}

struct Open {
    rows: Rows,
    sink: ParquetSink,
}

/// What a finished day holds.
#[derive(Debug, Clone, Copy)]
pub struct DayWritten {
    pub day: Day,
    pub rows: u64,
    pub bytes: u64,
}

impl Days {
    pub fn new(output: Location, layout: Layout) -> Days {
        let options = WriteOptions {
            row_group_bytes: ROW_GROUP_BYTES,
            ..WriteOptions::default()
        };
        Days {
            output,
            layout,
            options,
            open: BTreeMap::new(),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Adds a row to its day's file, opening the file at the day's first row.
    pub async fn push(&mut self, day: Day, cells: &[Cell<'_>], row: u64) -> Result<()> {
        let open = match self.open.get_mut(&day) {
            Some(open) => open,
            None => {
                let opened = self.create(day).await?;
                self.open.entry(day).or_insert(opened)
            }
        };
        open.rows.push(&self.layout, cells, row)?;
        if open.rows.len() >= BATCH_ROWS {
            let batch = open.rows.take(&self.layout)?;
            open.sink.write(&batch).await?;
        }
        Ok(())
    }

    /// Adds a batch of the day's rows (already in the output's schema) to its file.
    pub async fn write(&mut self, day: Day, batch: &RecordBatch) -> Result<()> {
        let open = match self.open.get_mut(&day) {
            Some(open) => open,
            None => {
                let opened = self.create(day).await?;
                self.open.entry(day).or_insert(opened)
            }
        };
        open.sink.write(batch).await
    }

    async fn create(&self, day: Day) -> Result<Open> {
        let location = partition(&self.output, day).join(PART);
        let sink = ParquetSink::create(&location, self.layout.schema.clone(), &self.options).await?;
        Ok(Open {
            rows: Rows::new(&self.layout),
            sink,
        })
    }

    /// Finishes the file of every day in `days` (an empty file for a day without rows, so
    /// that the day counts as fetched), then removes each day's other files.
    pub async fn finish(mut self, days: &[Day]) -> Result<Vec<DayWritten>> {
        let mut written = Vec::with_capacity(days.len());
        for &day in days {
            let mut open = match self.open.remove(&day) {
                Some(open) => open,
                None => self.create(day).await?,
            };
            if !open.rows.is_empty() {
                let batch = open.rows.take(&self.layout)?;
                open.sink.write(&batch).await?;
            }
            let done = open.sink.finish().await?;
            written.push(DayWritten {
                day,
                rows: done.rows,
                bytes: done.bytes,
            });
            self.remove_others(day).await?;
        }
        Ok(written)
    }

    async fn remove_others(&self, day: Day) -> Result<()> {
        let dir = partition(&self.output, day);
        let ours = dir.join(PART);
        for meta in dir.list().await? {
            if meta.location != *ours.path() {
                let Some(below) = meta.location.prefix_match(dir.path()) else {
                    continue;
                };
                let name: Vec<String> = below.map(|p| p.as_ref().to_string()).collect();
                dir.join(&name.join("/")).delete().await?;
            }
        }
        Ok(())
    }
}
