//! One recorded point, and the batching of points into `Data` events per stream.

use crate::model::{Encoding, Points, ScanEvent, StreamDesc};

/// One point of one stream, already in the stream's encoding.
#[derive(Debug)]
pub(crate) struct Sample {
    pub stream: usize,
    pub value: SampleValue,
}

#[derive(Debug)]
pub(crate) enum SampleValue {
    /// A fixed-shape point's bytes (little-endian, C order).
    Fixed(Vec<u8>),
    /// A variable-shape point.
    Variable(Vec<usize>, Vec<u8>),
    Json(serde_json::Value),
}

enum Pending {
    Fixed { count: usize, bytes: Vec<u8> },
    Variable(Vec<(Vec<usize>, Vec<u8>)>),
    Json(Vec<serde_json::Value>),
}

impl Pending {
    fn for_stream(stream: &StreamDesc) -> Pending {
        match &stream.encoding {
            Encoding::Json => Pending::Json(Vec::new()),
            encoding if encoding.is_variable() => Pending::Variable(Vec::new()),
            Encoding::Numeric { .. } => Pending::Fixed { count: 0, bytes: Vec::new() },
        }
    }

    fn len(&self) -> usize {
        match self {
            Pending::Fixed { count, .. } => *count,
            Pending::Variable(points) => points.len(),
            Pending::Json(points) => points.len(),
        }
    }

    fn take(&mut self) -> Points {
        match self {
            Pending::Fixed { count, bytes } => {
                Points::Fixed { count: std::mem::take(count), bytes: std::mem::take(bytes) }
            }
            Pending::Variable(points) => Points::Variable(std::mem::take(points)),
            Pending::Json(points) => Points::Json(std::mem::take(points)),
        }
    }
}

/// Points waiting per stream, and how many each stream has had.
pub(crate) struct Batcher {
    pending: Vec<Pending>,
    /// Per stream: the size a fixed point must have (a sample of another size is a bug
    /// in the source, refused rather than written misaligned).
    point_sizes: Vec<Option<usize>>,
    counts: Vec<u64>,
}

impl Batcher {
    pub fn new(streams: &[StreamDesc]) -> Batcher {
        Batcher {
            pending: streams.iter().map(Pending::for_stream).collect(),
            point_sizes: streams.iter().map(|s| s.encoding.point_size()).collect(),
            counts: vec![0; streams.len()],
        }
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn push(&mut self, sample: Sample) {
        let Some(pending) = self.pending.get_mut(sample.stream) else {
            tracing::error!("record: a sample for stream {} of {}", sample.stream, self.pending.len());
            return;
        };
        match (pending, sample.value) {
            (Pending::Fixed { count, bytes }, SampleValue::Fixed(point))
                if self.point_sizes[sample.stream] == Some(point.len()) =>
            {
                *count += 1;
                bytes.extend_from_slice(&point);
            }
            (Pending::Variable(points), SampleValue::Variable(shape, bytes)) => points.push((shape, bytes)),
            (Pending::Json(points), SampleValue::Json(value)) => points.push(value),
            (_, value) => tracing::error!("record: stream {} got a point it cannot hold: {value:?}", sample.stream),
        }
    }

    /// One `Data` event per stream with points waiting.
    pub fn drain(&mut self) -> Vec<ScanEvent> {
        let mut events = Vec::new();
        for (stream, pending) in self.pending.iter_mut().enumerate() {
            let n = pending.len();
            if n == 0 {
                continue;
            }
            events.push(ScanEvent::Data { stream, first_index: self.counts[stream], points: pending.take() });
            self.counts[stream] += n as u64;
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Dtype, ElementType};

    fn stream(name: &str, encoding: Encoding) -> StreamDesc {
        StreamDesc { name: Arc::from(name), encoding, info: Default::default() }
    }

    #[test]
    fn batches_keep_order_and_indices_per_stream() {
        let f8 = Encoding::Numeric { dtype: Dtype::little(ElementType::F64), shape: vec![] };
        let var = Encoding::Numeric { dtype: Dtype::little(ElementType::I32), shape: vec![-1] };
        let mut batcher = Batcher::new(&[stream("a", f8), stream("b", var), stream("c", Encoding::Json)]);
        for i in 0..3 {
            batcher.push(Sample { stream: 0, value: SampleValue::Fixed(f64::from(i).to_le_bytes().to_vec()) });
        }
        batcher.push(Sample { stream: 1, value: SampleValue::Variable(vec![1], 7i32.to_le_bytes().to_vec()) });
        // A misfit point is refused, not written misaligned.
        batcher.push(Sample { stream: 0, value: SampleValue::Fixed(vec![1, 2, 3]) });
        let first = batcher.drain();
        assert_eq!(first.len(), 2);
        match &first[0] {
            ScanEvent::Data { stream: 0, first_index: 0, points: Points::Fixed { count: 3, bytes } } => {
                assert_eq!(bytes.len(), 24);
                assert_eq!(f64::from_le_bytes(bytes[16..24].try_into().unwrap()), 2.0);
            }
            other => panic!("{other:?}"),
        }
        batcher.push(Sample { stream: 0, value: SampleValue::Fixed(9f64.to_le_bytes().to_vec()) });
        batcher.push(Sample { stream: 2, value: SampleValue::Json(serde_json::json!("x")) });
        let second = batcher.drain();
        assert!(matches!(
            &second[0],
            ScanEvent::Data { stream: 0, first_index: 3, points: Points::Fixed { count: 1, .. } }
        ));
        assert!(
            matches!(&second[1], ScanEvent::Data { stream: 2, first_index: 0, points: Points::Json(v) } if v.len() == 1)
        );
        assert_eq!(batcher.counts(), &[4, 1, 1]);
        assert!(batcher.drain().is_empty());
    }
}
