/// How a session's messages are delimited on the wire (docs/protocol.md §2). Chosen by the handshake.
public enum Framing: Sendable, Equatable {
    /// The handshake ended with `\n`: everything sent to this session ends with `\n`.
    case line
    /// The handshake ended with silence (the original client): replies and messages go bare.
    case raw
}

/// One unit the framer cut from the byte stream.
public enum Frame: Equatable {
    /// A complete message, without its `\n` or `\r\n`.
    case message(ArraySlice<UInt8>)
    /// A message longer than the limit; its bytes are discarded up to the next `\n`.
    case tooLong
}

/// Cuts an incoming byte stream into messages (docs/protocol.md §2): a message ends at `\n`
/// (a `\r` before it is dropped), or at a silence the runtime reports with `flushPartial()`.
///
/// Bytes are appended as they arrive and taken out one message at a time, so a runtime
/// that must pause (rate limit) simply stops asking; nothing is lost or reordered.
public struct MessageFramer {
    private var buffer: [UInt8] = []
    /// First byte not yet handed out.
    private var start = 0
    /// Bytes from `start` already known to hold no `\n`.
    private var scanned = 0
    /// An over-long message is being skipped up to its `\n`.
    private var discarding = false
    /// Longest message, not counting `\r\n`.
    public var maxBytes: Int

    public init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// Bytes received and not yet handed out.
    public var bufferedBytes: Int { buffer.count - start }
    /// True when bytes of an unterminated message wait (what a silence would complete).
    public var hasPartial: Bool { buffer.count > start }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        appendCompacting(bytes, to: &buffer, consumed: &start)
    }

    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        if bytes.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0)) }) != nil { return }
        Array(bytes).withUnsafeBytes { append($0) }
    }

    /// The next complete message, or nil when none is buffered yet.
    public mutating func next() -> Frame? {
        while true {
            let end = buffer.count
            var i = start + scanned
            var newline = -1
            while i < end {
                if buffer[i] == 0x0A { newline = i; break }
                i += 1
            }
            if newline < 0 {
                scanned = end - start
                // Longer than any valid message can become: cut it off now rather than buffer it.
                if !discarding && scanned > maxBytes + 1 {
                    discarding = true
                    dropBuffered()
                    return .tooLong
                }
                if discarding { dropBuffered() }
                return nil
            }
            let lineStart = start
            var lineEnd = newline
            if lineEnd > lineStart && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            start = newline + 1
            scanned = 0
            if discarding {
                discarding = false
                continue
            }
            if lineEnd - lineStart > maxBytes { return .tooLong }
            return .message(buffer[lineStart..<lineEnd])
        }
    }

    /// A silence ended the stream's pending bytes: hand them out as one message.
    public mutating func flushPartial() -> Frame? {
        guard hasPartial else { return nil }
        if discarding {
            discarding = false
            dropBuffered()
            return nil
        }
        let lineStart = start
        var lineEnd = buffer.count
        if buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
        start = buffer.count
        scanned = 0
        if lineEnd - lineStart > maxBytes { return .tooLong }
        return .message(buffer[lineStart..<lineEnd])
    }

    /// Frees the buffer when nothing is buffered: a session that went quiet after its
    /// handshake keeps no memory for input it may never send.
    public mutating func releaseIfEmpty() {
        guard start == buffer.count, buffer.capacity > 0 else { return }
        buffer = []
        start = 0
        scanned = 0
    }

    /// Everything received and not handed out, emptying the framer (a connection changing protocol).
    public mutating func takeBuffered() -> [UInt8] {
        let rest = Array(buffer[start...])
        dropBuffered()
        return rest
    }

    private mutating func dropBuffered() {
        buffer.removeAll(keepingCapacity: true)
        start = 0
        scanned = 0
    }
}

/// Appends `bytes` to a parser's input `buffer`, whose first `consumed` bytes were parsed
/// already: those are dropped first when nothing else is left, or when they are most of a
/// large buffer (so a long stream neither grows the buffer nor copies it on every read).
/// Shared by `MessageFramer` and `WebSocketDecoder`.
@inline(__always)
func appendCompacting(_ bytes: UnsafeRawBufferPointer, to buffer: inout [UInt8], consumed start: inout Int) {
    if start > 0 && start == buffer.count {
        buffer.removeAll(keepingCapacity: true)
        start = 0
    } else if start > 4096 && start * 2 > buffer.count {
        buffer.removeSubrange(0..<start)
        start = 0
    }
    buffer.append(contentsOf: bytes)
}
