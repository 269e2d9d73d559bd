import ChatCore

/// Which handshake the terminal client sends, and what it makes of the reply (docs/protocol.md
/// §2, "The terminal client"). Pure: the socket work is in HandshakeExchange and TerminalClient.
///
/// A tcp_chat node answers a handshake ended with `\n` with `200\n` and then frames every
/// message with `\n`: messages are cut at newlines, never at reads, so no message split or
/// glued at a TCP segment boundary can show a forged `bob - …` line or a lone `/exit`.
/// The original server (`cn_tcp_server` 0.0.2) takes the whole first read as the handshake:
/// to `alice_room\n` it answers a bare `200` and puts us in room `room\n`, where nobody is.
/// So in `auto` mode a bare `200` (no `\n` within `lineReplyGraceMs`, or other bytes right
/// behind it) or a `400` means "not a tcp_chat node": leave that connection and hand-shake
/// again, bare, with raw framing as the original client does.
public enum HandshakePlan {
    /// `--framing`: `auto` (line handshake, bare fallback), `line` (line or fail), `raw` (bare).
    public enum Mode: String, Sendable, CaseIterable {
        case auto, line, raw
    }

    public enum Attempt: Equatable, Sendable {
        /// `user_room\n`.
        case line
        /// `user_room`, as the original client sends it.
        case bare
    }

    public enum Step: Equatable, Sendable {
        /// Need more bytes, or the grace for a `\n` behind `200` to pass.
        case wait
        /// The session starts. `rest`: message bytes that came behind the reply.
        case chat(framing: Framing, rest: [UInt8])
        /// Not a tcp_chat node: leave this connection and hand-shake again bare.
        /// `accepted`: the server took our line handshake (we hold our name there for now).
        case fallBack(accepted: Bool)
        /// A line handshake (`--framing line`) answered as a line node never would.
        case notLineNode([UInt8])
        /// The server refused us (or said something else): `.nameTaken`, `.malformed`, `.unexpected`.
        case refused(HandshakeReply)
    }

    /// The first handshake a mode sends.
    public static func first(_ mode: Mode) -> Attempt { mode == .raw ? .bare : .line }

    /// What to do with `received` (every byte since the handshake went out) for `attempt` in
    /// `mode`. `graceOver`: at least `lineReplyGraceMs` passed since the first byte arrived.
    public static func step(mode: Mode, attempt: Attempt, received: [UInt8], graceOver: Bool) -> Step {
        guard let reply = HandshakeReply.parse(received) else { return .wait }
        switch (attempt, reply) {
        case (.bare, .accepted(let framing, let rest)):
            // A bare handshake makes a raw session on any server (a tcp_chat node answers it
            // bare); `200\n` would be a line server, and is read as one.
            return .chat(framing: framing ?? .raw, rest: rest)
        case (.bare, _):
            return .refused(reply)
        case (.line, .accepted(.line?, let rest)):
            return .chat(framing: .line, rest: rest)
        case (.line, .accepted(nil, _)):
            // `200` (or `200\r`) so far: a node's `\n` is in the same write, so it comes at
            // once; the original server never sends it.
            if !graceOver { return .wait }
            return mode == .auto ? .fallBack(accepted: true) : .notLineNode(received)
        case (.line, .accepted(.raw?, _)):
            return mode == .auto ? .fallBack(accepted: true) : .notLineNode(received)
        case (.line, .malformed):
            // Our names are valid (checked before connecting): a server that finds the line
            // handshake malformed may take the bare one.
            return mode == .auto ? .fallBack(accepted: false) : .refused(reply)
        case (.line, _):
            return .refused(reply)
        }
    }
}
