/// A connection's outgoing queue: shared payloads and how many of their bytes to send.
/// It lives in the core so a room's fan-out appends to it directly — no protocol call and
/// no reference counting per member (a payload's queue references are plain integers,
/// see `Payload.takeQueueRef`). The runtime drains it once per loop turn, usually by
/// taking the whole array at once (`take(upTo:into:)`).
/// Called on the node's loop thread only.
public final class Outbox {
    public typealias Entry = (payload: Unmanaged<Payload>, length: Int)
    /// Entries before `head` were taken already (only after a partial take).
    private var entries = ContiguousArray<Entry>()
    private var head = 0
    /// Bytes queued and not yet taken by the runtime.
    public private(set) var bytes = 0
    /// Set on the first append after a drain; the runtime clears it when it drains.
    public var scheduled = false
    /// Called when `scheduled` becomes true: the runtime puts the connection on its flush list.
    public var onSchedule: (() -> Void)?
    /// A closing connection takes nothing more.
    public var closed = false

    public init() {}

    public var isEmpty: Bool { head == entries.count }
    public var count: Int { entries.count - head }

    @inline(__always)
    public func append(_ payload: Payload, length: Int) {
        guard !closed, length > 0 else { return }
        entries.append((payload.takeQueueRef(), length))
        bytes += length
        if !scheduled {
            scheduled = true
            onSchedule?()
        }
    }

    /// Moves up to `max` of the oldest entries to the end of `out`, which must be empty for
    /// the fast path: when everything fits, the two arrays are swapped (no per-entry work).
    /// Their queue references pass to the caller. Returns the bytes moved.
    public func take(upTo max: Int, into out: inout ContiguousArray<Entry>) -> Int {
        let n = Swift.min(max, entries.count - head)
        guard n > 0 else { return 0 }
        var moved = 0
        if head == 0 && n == entries.count && out.isEmpty {
            swap(&entries, &out)
            moved = bytes
        } else {
            for e in entries[head..<(head + n)] { out.append(e); moved += e.length }
            head += n
            if head == entries.count { entries.removeAll(keepingCapacity: true); head = 0 }
        }
        bytes -= moved
        assert((bytes == 0) == isEmpty, "the outbox's byte count is out of step with its entries")
        return moved
    }

    /// The oldest entry; its queue reference passes to the caller (`dropQueueRef` when done).
    public func popFirst() -> Entry? {
        guard head < entries.count else { return nil }
        let e = entries[head]
        head += 1
        if head == entries.count { entries.removeAll(keepingCapacity: true); head = 0 }
        bytes -= e.length
        assert((bytes == 0) == isEmpty, "the outbox's byte count is out of step with its entries")
        return e
    }

    /// Drops everything queued.
    public func removeAll() {
        for e in entries[head...] { e.payload.dropQueueRef() }
        entries.removeAll(keepingCapacity: true)
        head = 0
        bytes = 0
    }

    deinit { removeAll() }
}
