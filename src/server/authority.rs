//! Inbound HTTP/2 header normalisation on client connections, so that every `:authority` the
//! real etcd clients send is accepted, as grpc-go servers (etcd) accept it.
//!
//! etcdctl 3.4 sends the endpoint as written, scheme included (`:authority:
//! http://127.0.0.1:2379`), and clientv3 3.5.0 sends `#initially=[https://...]`. The HTTP/2
//! layer under tonic (h2) parses `:authority` as a URI authority and resets the stream with
//! `PROTOCOL_ERROR` when it does not parse, before any service sees the request; it has no
//! option to relax that. So every client connection reads through [`AuthorityFix`], which sits
//! between the socket and h2 and rewrites only header blocks:
//!
//! - it walks the client's frames (after the connection preface; anything else — HTTP/1, a
//!   broken preface — passes through untouched, for h2 to answer);
//! - every header block (HEADERS + CONTINUATION frames) is HPACK-decoded with a decoder that
//!   tracks the client's dynamic table, `:authority` is normalised ([`normalised_authority`]:
//!   the scheme and anything after the host and port dropped, or the header left out when
//!   nothing valid remains), and the block is re-encoded as literals that never enter a
//!   dynamic table, so h2's decoder table stays empty and can never disagree with the client's;
//! - every other frame passes through byte for byte (DATA included: only its 9-byte frame
//!   header is looked at).
//!
//! A connection whose first header block needs no change passes through unchanged from then
//! on: gRPC clients send one `:authority` for every call on a connection, and decoding and
//! re-encoding every block cost a third of the server's CPU under a put load. On connections
//! that are rewritten, Huffman-coded strings are decoded first by [`super::hpack_raw`] (the
//! HPACK decoder used here builds its Huffman table for every string).
//!
//! Invariant: the bytes h2 reads are a valid HTTP/2 stream exactly when the client's were. A
//! header block that does not decode switches the connection to pass-through, so h2 sees the
//! original bytes and reports the client's error itself. Priority fields and padding are
//! dropped from rewritten HEADERS frames (h2 ignores priority; padding carries nothing).

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::Decoder;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// What every HTTP/2 client connection starts with.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The frame size every HTTP/2 peer accepts (the protocol's minimum maximum).
const MAX_FRAME: usize = 16_384;
const READ_CHUNK: usize = 16 * 1024;

/// The `:authority` value h2 will accept for `value`: the value itself when it is a valid URI
/// authority; else what follows a `scheme://` prefix, cut at the first character that cannot
/// be part of a host and port (`/`, `]`, `,`, ...); `None` when nothing valid remains (the
/// header is then left out: a request needs no authority).
pub fn normalised_authority(value: &[u8]) -> Option<Vec<u8>> {
    let valid = |v: &[u8]| !v.is_empty() && http::uri::Authority::try_from(v).is_ok();
    if valid(value) {
        return Some(value.to_vec());
    }
    let text = String::from_utf8_lossy(value);
    let after_scheme = text.split_once("://").map_or(&*text, |(_, rest)| rest);
    let end = after_scheme
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-._:@".contains(c)))
        .unwrap_or(after_scheme.len());
    let candidate = &after_scheme.as_bytes()[..end];
    valid(candidate).then(|| candidate.to_vec())
}

/// Where the reader is in the client's byte stream.
enum Phase {
    /// Before the connection preface has been seen whole.
    Preface,
    /// Walking frames.
    Frames,
    /// Passing everything through unchanged.
    Passthrough,
}

/// The header block being collected (HEADERS, then CONTINUATION frames).
struct Block {
    stream: u32,
    end_stream: bool,
    fragment: Vec<u8>,
    /// The frames as received, for pass-through if the block does not decode.
    raw: Vec<u8>,
}

/// The client-to-server rewriting state of one connection.
struct Rewriter {
    phase: Phase,
    input: BytesMut,
    output: BytesMut,
    decoder: Decoder<'static>,
    block: Option<Block>,
    /// Payload bytes of the current non-header frame still to pass through.
    payload_left: usize,
    /// A header block has been decoded (and re-encoded) on this connection.
    rewrote: bool,
}

impl Rewriter {
    fn new() -> Self {
        Rewriter {
            phase: Phase::Preface,
            input: BytesMut::new(),
            output: BytesMut::new(),
            decoder: Decoder::new(),
            block: None,
            payload_left: 0,
            rewrote: false,
        }
    }

    /// Moves everything of `input` that can be decided on to `output`.
    fn process(&mut self) {
        loop {
            match self.phase {
                Phase::Passthrough => {
                    let all = self.input.split();
                    self.output.unsplit(all);
                    return;
                }
                Phase::Preface => {
                    let n = self.input.len().min(PREFACE.len());
                    if self.input[..n] != PREFACE[..n] {
                        self.phase = Phase::Passthrough;
                    } else if n == PREFACE.len() {
                        let preface = self.input.split_to(n);
                        self.output.unsplit(preface);
                        self.phase = Phase::Frames;
                    } else {
                        return;
                    }
                }
                Phase::Frames => {
                    if !self.next_frame() {
                        return;
                    }
                }
            }
        }
    }

    /// Handles the next frame (or part of a passed-through payload); false when more input is
    /// needed.
    fn next_frame(&mut self) -> bool {
        if self.payload_left > 0 {
            let n = self.payload_left.min(self.input.len());
            let part = self.input.split_to(n);
            self.output.unsplit(part);
            self.payload_left -= n;
            return self.payload_left == 0 && !self.input.is_empty();
        }
        if self.input.len() < FRAME_HEADER {
            return false;
        }
        let len = u32::from_be_bytes([0, self.input[0], self.input[1], self.input[2]]) as usize;
        let kind = self.input[3];
        if kind != HEADERS && kind != CONTINUATION {
            let header = self.input.split_to(FRAME_HEADER);
            self.output.unsplit(header);
            self.payload_left = len;
            return true;
        }
        if self.input.len() < FRAME_HEADER + len {
            return false;
        }
        let frame = self.input.split_to(FRAME_HEADER + len);
        self.header_frame(&frame);
        true
    }

    /// Collects one HEADERS or CONTINUATION frame; at the end of the block, emits it rewritten.
    fn header_frame(&mut self, frame: &[u8]) {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER..];
        let fragment = if kind == HEADERS {
            let padded = flags & PADDED != 0;
            let pad = if padded {
                payload.first().copied()
            } else {
                Some(0)
            };
            let start = padded as usize + if flags & PRIORITY != 0 { 5 } else { 0 };
            let end = pad.and_then(|pad| payload.len().checked_sub(pad as usize));
            match end.filter(|end| *end >= start) {
                Some(end) => &payload[start..end],
                None => return self.give_up(frame),
            }
        } else {
            payload
        };
        match (&mut self.block, kind) {
            (None, HEADERS) => {
                self.block = Some(Block {
                    stream,
                    end_stream: flags & END_STREAM != 0,
                    fragment: fragment.to_vec(),
                    raw: frame.to_vec(),
                })
            }
            (Some(block), CONTINUATION) if block.stream == stream => {
                block.fragment.extend_from_slice(fragment);
                block.raw.extend_from_slice(frame);
            }
            _ => return self.give_up(frame),
        }
        if flags & END_HEADERS != 0 {
            let block = self.block.take().expect("a block is being collected");
            self.finish_block(block);
        }
    }

    /// Decodes a whole block and emits it re-encoded.
    fn finish_block(&mut self, block: Block) {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let Some(plain) = super::hpack_raw::without_huffman(&block.fragment) else {
            return self.give_up(&block.raw);
        };
        let decoded = self.decoder.decode_with_cb(&plain, |name, value| {
            fields.push((name.into_owned(), value.into_owned()))
        });
        if decoded.is_err() {
            return self.give_up(&block.raw);
        }
        let first = !std::mem::replace(&mut self.rewrote, true);
        let needs_fix = |(name, value): &(Vec<u8>, Vec<u8>)| {
            name.as_slice() == b":authority"
                && normalised_authority(value).as_deref() != Some(value.as_slice())
        };
        if first && !fields.iter().any(needs_fix) {
            // h2 has seen no header block yet, so its decoder table matches the client's.
            return self.give_up(&block.raw);
        }
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        for (name, value) in &fields {
            let value = if name.as_slice() == b":authority" {
                match normalised_authority(value) {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                value.clone()
            };
            encode_literal(&mut encoded, name, &value);
        }
        self.emit_block(block.stream, block.end_stream, &encoded);
    }

    /// Writes `encoded` as a HEADERS frame and as many CONTINUATION frames as it needs.
    fn emit_block(&mut self, stream: u32, end_stream: bool, encoded: &[u8]) {
        let mut chunks = encoded.chunks(MAX_FRAME).peekable();
        let mut kind = HEADERS;
        let mut flags = if end_stream { END_STREAM } else { 0 };
        loop {
            let chunk = chunks.next().unwrap_or_default();
            let last = chunks.peek().is_none();
            if last {
                flags |= END_HEADERS;
            }
            self.output
                .put_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
            self.output.put_u8(kind);
            self.output.put_u8(flags);
            self.output.put_u32(stream);
            self.output.put_slice(chunk);
            if last {
                return;
            }
            kind = CONTINUATION;
            flags = 0;
        }
    }

    /// Stops rewriting: `raw` and everything after it go to h2 unchanged.
    fn give_up(&mut self, raw: &[u8]) {
        if let Some(block) = self.block.take() {
            self.output.put_slice(&block.raw);
        }
        self.output.put_slice(raw);
        self.phase = Phase::Passthrough;
    }
}

/// Appends a "literal header field without indexing — new name" (RFC 7541 §6.2.2), strings
/// not Huffman-coded.
fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    for s in [name, value] {
        loona_hpack::encoder::encode_integer_into(s.len(), 7, 0, out)
            .expect("writing to a Vec cannot fail");
        out.extend_from_slice(s);
    }
}

/// A client connection whose inbound header blocks are normalised (see the module docs);
/// writes pass straight through.
pub struct AuthorityFix<S> {
    io: S,
    rewriter: Rewriter,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(io: S) -> Self {
        AuthorityFix {
            io,
            rewriter: Rewriter::new(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let out = &mut this.rewriter.output;
            if !out.is_empty() {
                let n = out.len().min(buf.remaining());
                buf.put_slice(&out[..n]);
                out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // Whatever is left incomplete goes to h2, which reports the truncation.
                let rest = this.rewriter.input.split();
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.rewriter.output.unsplit(rest);
                continue;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
            } else {
                this.rewriter.input.put_slice(read.filled());
                this.rewriter.process();
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
