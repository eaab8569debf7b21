//! Recorded captures (`--file PATH`, `--file -` for stdin): plain or gzip-compressed (found by the
//! gzip magic bytes, not the file name, so `curl --compressed -o x` and `x.prom.gz` both work),
//! read up to the byte cap, and the exposition format to parse them as (`--format`).
//!
//! The cap counts decompressed bytes and decompression stops one byte past it: a small gzip file
//! that inflates to gigabytes (a decompression bomb) costs at most the cap in memory, and is
//! recorded as the target's error, with why, like an HTTP payload over the cap.

use crate::fetch::{self, CappedError};
use std::io::{Read, Write};

/// The two bytes every gzip member starts with (RFC 1952, ID1 ID2).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How to parse a capture, which has no `Content-Type` to say so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptureFormat {
    /// OpenMetrics when the body's last line is `# EOF`, else Prometheus text.
    #[default]
    Auto,
    /// Prometheus text format 0.0.4 (a trailing `# EOF` line is then just a comment).
    Prometheus,
    /// OpenMetrics 1.0 text.
    Openmetrics,
}

impl CaptureFormat {
    /// The `Content-Type` a server would have sent for this format (`None`: detect from the body).
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            CaptureFormat::Auto => None,
            CaptureFormat::Prometheus => Some("text/plain; version=0.0.4"),
            CaptureFormat::Openmetrics => Some("application/openmetrics-text; version=1.0.0"),
        }
    }
}

/// Why a capture was not read: trouble on this machine (fatal), or a capture that is unusable
/// (recorded as the target's error).
#[derive(Debug)]
pub enum CaptureError {
    /// Reading failed (the file vanished, a read error): a local problem, not data.
    Io(std::io::Error),
    /// The capture is unusable: over the cap, or a corrupt gzip stream.
    Unusable(String),
}

/// Read a capture, inflating it when it starts with the gzip magic (concatenated gzip members,
/// as `cat a.gz b.gz` makes, are read as one stream). At most `cap` bytes after decompression.
pub fn read_capture(mut reader: impl Read, cap: u64) -> Result<Vec<u8>, CaptureError> {
    // Peek at the first two bytes without losing them (a pipe may deliver them one at a time).
    let mut head = Vec::with_capacity(2);
    (&mut reader).take(2).read_to_end(&mut head).map_err(CaptureError::Io)?;
    let whole = std::io::Cursor::new(head.clone()).chain(reader);
    if head != GZIP_MAGIC {
        return fetch::read_capped(whole, cap).map_err(|e| match e {
            CappedError::TooBig => CaptureError::Unusable(format!(
                "the capture exceeds the {cap}-byte cap (--max-bytes); stopped reading"
            )),
            CappedError::Io(io) => CaptureError::Io(io),
        });
    }
    let inflated = fetch::read_capped(flate2::read::MultiGzDecoder::new(whole), cap);
    inflated.map_err(|e| match e {
        CappedError::TooBig => CaptureError::Unusable(format!(
            "the gzip capture inflates past the {cap}-byte cap (--max-bytes); stopped decompressing"
        )),
        // flate2 reports a corrupt or truncated stream as an I/O error of these kinds.
        CappedError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            CaptureError::Unusable(format!("not a valid gzip stream: {io}"))
        }
        CappedError::Io(io) => CaptureError::Io(io),
    })
}

/// Compress `data` as `gzip -c` would (for writing captures, and the tests).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &[u8] = b"# TYPE up gauge\nup 1\n";

    fn unusable(r: Result<Vec<u8>, CaptureError>) -> String {
        match r {
            Err(CaptureError::Unusable(reason)) => reason,
            other => panic!("expected an unusable capture, got {other:?}"),
        }
    }

    #[test]
    fn plain_and_gzip_read_the_same() {
        assert_eq!(read_capture(PAGE, 1024).unwrap(), PAGE);
        assert_eq!(read_capture(&gzip(PAGE)[..], 1024).unwrap(), PAGE);
        let mut two = gzip(b"# TYPE up gauge\n");
        two.extend(gzip(b"up 1\n"));
        assert_eq!(read_capture(&two[..], 1024).unwrap(), PAGE, "concatenated members");
        assert_eq!(read_capture(&b""[..], 10).unwrap(), b"");
        assert_eq!(read_capture(&[0x1f][..], 10).unwrap(), [0x1f], "one byte is not gzip");
    }

    #[test]
    fn the_cap_counts_inflated_bytes_and_stops_a_bomb() {
        // 64 MiB of zeros compress to about 64 KiB; a 1 MiB cap must stop the inflation early,
        // before the compressed stream is used up.
        let bomb = {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                encoder.write_all(&zeros).unwrap();
            }
            encoder.finish().unwrap()
        };
        assert!(bomb.len() < 1 << 20, "the bomb itself is small: {}", bomb.len());
        struct Counting<'a>(&'a [u8], usize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n;
                Ok(n)
            }
        }
        let mut source = Counting(&bomb, 0);
        let reason = unusable(read_capture(&mut source, 1 << 20));
        assert!(reason.contains("1048576-byte cap") && reason.contains("gzip"), "{reason}");
        // The decoder reads 32 KiB at a time: stopping early means not reaching the end.
        assert!(source.1 < bomb.len(), "read {} of {} compressed bytes", source.1, bomb.len());

        let page = gzip(PAGE);
        let reason = unusable(read_capture(&page[..], PAGE.len() as u64 - 1));
        assert!(reason.contains("cap"), "{reason}");
        assert_eq!(read_capture(&page[..], PAGE.len() as u64).unwrap(), PAGE, "exactly the cap");
        let reason = unusable(read_capture(&[b'x'; 11][..], 10));
        assert!(reason.contains("10-byte cap") && !reason.contains("gzip"), "{reason}");
    }

    #[test]
    fn corrupt_or_truncated_gzip_is_a_reason() {
        let page = gzip(PAGE);
        let reason = unusable(read_capture(&page[..page.len() - 6], 1024));
        assert!(reason.contains("not a valid gzip stream"), "{reason}");
        let mut garbled = page.clone();
        for b in &mut garbled[10..14] {
            *b ^= 0xff;
        }
        let reason = unusable(read_capture(&garbled[..], 1024));
        assert!(reason.contains("gzip"), "{reason}");
    }

    #[test]
    fn formats_map_to_content_types() {
        assert_eq!(CaptureFormat::Auto.content_type(), None);
        let om = CaptureFormat::Openmetrics.content_type().unwrap();
        assert_eq!(opsg_expo::detect_format(Some(om), b"a 1\n"), opsg_expo::Format::OpenMetrics);
        let text = CaptureFormat::Prometheus.content_type().unwrap();
        assert_eq!(
            opsg_expo::detect_format(Some(text), b"a 1\n# EOF\n"),
            opsg_expo::Format::PrometheusText
        );
    }
}
