// Shared by every fuzz target (compiled into each one; see Fuzz/README.md).
//
// A target is one module made of its own files, this file, and every source of
// Sources/ChatCore, so the harness sees ChatCore's internal API the way
// `@testable import` would, and libFuzzer's coverage instrumentation covers the core.

#if canImport(Glibc)
import Glibc
#endif

/// Stops the run with a message libFuzzer's crash report will show. An invariant that
/// does not hold is a finding: the input is saved as a crash file.
@inline(never)
func fuzzFail(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "FUZZ INVARIANT FAILED at \(file):\(line): \(message())\n"
    fputs(text, stderr)
    fatalError(text, file: file, line: line)
}

@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fuzzFail(message(), file: file, line: line) }
}

/// Reads the fuzzer's bytes front to back; past the end every read is zero (and `atEnd`).
struct FuzzReader {
    let bytes: [UInt8]
    var pos = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { pos >= bytes.count }
    var remaining: Int { max(0, bytes.count - pos) }

    mutating func byte() -> UInt8 {
        guard pos < bytes.count else { return 0 }
        defer { pos += 1 }
        return bytes[pos]
    }

    mutating func u16() -> UInt16 { UInt16(byte()) | UInt16(byte()) << 8 }

    mutating func take(_ n: Int) -> ArraySlice<UInt8> {
        let end = min(bytes.count, pos + max(0, n))
        defer { pos = end }
        return bytes[min(pos, end)..<end]
    }

    mutating func rest() -> ArraySlice<UInt8> { take(remaining) }
}

/// Hex for messages.
func hex<C: Collection>(_ bytes: C, limit: Int = 96) -> String where C.Element == UInt8 {
    let digits = Array("0123456789abcdef")
    var s = ""
    for b in bytes.prefix(limit) { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 15)]) }
    if bytes.count > limit { s += "…(\(bytes.count) bytes)" }
    return s
}

/// A session sink that records what a session was sent (as the runtime's connection would
/// write it) and the calls the hub makes. The replies go into one buffer that `clear()`
/// empties and keeps, so a sink used for many inputs records without allocating.
final class RecordingSink: SessionSink {
    /// Every reply since `clear()`, back to back; reply `i` ends at `ends[i]`.
    private(set) var bytes: [UInt8] = []
    private(set) var ends: [Int] = []
    var session: Session?
    var finished: [Bool] = []
    var endRequested = false

    /// Replies since `clear()`.
    var count: Int { ends.count }
    func reply(_ i: Int) -> ArraySlice<UInt8> { bytes[(i == 0 ? 0 : ends[i - 1])..<ends[i]] }
    /// The replies as arrays, for messages.
    var sent: [[UInt8]] { (0..<count).map { Array(reply($0)) } }

    func clear() {
        // removeAll is a generic replaceSubrange, traced compare by compare: skip it when empty.
        if !ends.isEmpty {
            bytes.removeAll(keepingCapacity: true)
            ends.removeAll(keepingCapacity: true)
        }
    }

    func enqueue(_ payload: Payload, length: Int) {
        require(length >= 0 && length <= payload.count, "enqueue length \(length) of a \(payload.count)-byte payload")
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: payload.bytes[0..<length]))
        ends.append(bytes.count)
    }
    func loginFinished(_ s: Session?) {
        finished.append(s != nil)
        if let s { session = s }
    }
    func endSession() { endRequested = true }
}

/// Byte-for-byte equality, through `memcmp` when both sides are contiguous. The harness's
/// own comparisons are not what is being fuzzed: an element loop compiled into the target
/// carries coverage and comparison tracing (tens of instructions a byte), memcmp none.
func same<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool where A.Element == UInt8, B.Element == UInt8 {
    guard a.count == b.count else { return false }
    let fast: Bool?? = a.withContiguousStorageIfAvailable { pa in
        b.withContiguousStorageIfAvailable { pb in
            pa.isEmpty || memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0
        }
    }
    if let f = fast, let equal = f { return equal }
    return a.elementsEqual(b)
}

extension Collection where Element == UInt8 {
    /// True when the bytes are `prefix` followed by `rest`.
    func isConcatenation<P: Collection, R: Collection>(of prefix: P, _ rest: R) -> Bool
    where P.Element == UInt8, R.Element == UInt8, Self.SubSequence: Collection {
        guard count == prefix.count + rest.count else { return false }
        let cut = index(startIndex, offsetBy: prefix.count)
        return same(self[..<cut], prefix) && same(self[cut...], rest)
    }
}
