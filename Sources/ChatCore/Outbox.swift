import DequeModule

/// A connection's outgoing queue: shared payloads and how many of their bytes to send.
/// It lives in the core so a room's fan-out appends to it directly — no protocol call and
/// no reference counting per member (a payload's queue references are plain integers,
/// see `Payload.takeQueueRef`). The runtime drains it once per loop turn.
/// Called on the node's loop thread only.
public final class Outbox {
    private var entries = Deque<(Unmanaged<Payload>, Int)>()
    /// Bytes queued and not yet taken by the runtime.
    public private(set) var bytes = 0
    /// Set on the first append after a drain; the runtime clears it when it drains.
    public var scheduled = false
    /// Called when `scheduled` becomes true: the runtime puts the connection on its flush list.
    public var onSchedule: (() -> Void)?
    /// A closing connection takes nothing more.
    public var closed = false

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }

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

    /// The oldest entry; its queue reference passes to the caller (`dropQueueRef` when done).
    @inline(__always)
    public func popFirst() -> (Unmanaged<Payload>, Int)? {
        guard let e = entries.popFirst() else { return nil }
        bytes -= e.1
        return e
    }

    /// Drops everything queued.
    public func removeAll() {
        while let (p, _) = entries.popFirst() { p.dropQueueRef() }
        bytes = 0
    }

    deinit { removeAll() }
}
