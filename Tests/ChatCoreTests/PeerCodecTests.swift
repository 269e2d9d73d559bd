import Testing
@testable import ChatCore

/// The inter-node line codec (PeerMessage.swift): every message kind survives
/// encode → decode, and anything out of shape throws instead of crashing.
@Suite struct PeerCodecTests {
    static let a = NodeID("0123456789abcdef")!
    static let b = NodeID("fedcba9876543210")!
    static let f = Flood(origin: a, seq: 42)

    static let samples: [PeerMessage] = [
        .hello(node: a, advertise: "10.0.0.1:8888", nonce: "n0nce", secret: false),
        .hello(node: b, advertise: "[::1]:9", nonce: String(repeating: "x", count: 128), secret: true),
        .hello(node: b, advertise: "host.example.org:1", nonce: "Z", secret: false),
        .auth(proof: String(repeating: "ab", count: 32)),
        .error(reason: "wrong cluster secret proof"),
        .error(reason: "  spaced  out  "),
        .heartbeat(f, advertise: "chat.example:8889", version: 1, neighbors: []),
        .heartbeat(f, advertise: "chat.example:8889", version: 7, neighbors: nil),
        .heartbeat(Flood(origin: b, seq: 0), advertise: "h:1", version: UInt64(Int64.max), neighbors: [a, b]),
        .state(f, rooms: [], claims: []),
        .state(f, rooms: ["lobby"], claims: []),
        .state(f, rooms: [], claims: [NameClaim(name: "alice", ts: 7)]),
        .state(f, rooms: ["lobby", "a/b", "0"], claims: [NameClaim(name: "alice", ts: 7), NameClaim(name: "b/ob", ts: UInt64(Int64.max))]),
        .room(f, joined: true, room: "lobby"),
        .room(f, joined: false, room: String(repeating: "r", count: Limits.maxChatIDLength)),
        .claim(f, NameClaim(name: "alice", ts: 123)),
        .claim(f, NameClaim(name: String(repeating: "u", count: Limits.maxUsernameLength), ts: 0)),
        .reply(f, claimant: b, NameClaim(name: "alice", ts: 123), granted: true),
        .reply(f, claimant: a, NameClaim(name: "alice", ts: 124), granted: false),
        .release(f, NameClaim(name: "alice", ts: 123)),
        .bye(Flood(origin: b, seq: UInt64(Int64.max))),
        .load(f, sessions: 0, rooms: []),
        .load(f, sessions: 3, rooms: [RoomCount(room: "lobby", members: 2), RoomCount(room: "a/b", members: 1)]),
        .chat(f, room: "lobby", user: "Alice", text: "hello  world with  spaces "),
        .chat(f, room: "lobby", user: "bob", text: " leading space"),
        .chat(f, room: "r", user: "B/ob", text: "-"),
        .chat(f, room: "r", user: "u", text: "ünïcödé 😀 \t tab"),
        .chat(f, room: "r", user: "u", text: "MSG \(a) 1 r u nested"),
    ]

    @Test(arguments: samples)
    func roundTrip(_ msg: PeerMessage) throws {
        let line = msg.encoded
        #expect(!line.contains("\n"))
        let back = try PeerMessage.decode(line)
        #expect(back == msg, "\(line)")
        #expect(back.encoded == line)
    }

    @Test func encodedFormsMatchTheDocumentedLines() {
        let a = Self.a, b = Self.b
        #expect(PeerMessage.hello(node: a, advertise: "h:1", nonce: "n", secret: true).encoded == "TCPCHAT-PEER/3 HELLO \(a) h:1 n secret")
        #expect(PeerMessage.heartbeat(Self.f, advertise: "h:1", version: 3, neighbors: []).encoded == "HB \(a) 42 h:1 3 -")
        #expect(PeerMessage.heartbeat(Self.f, advertise: "h:1", version: 4, neighbors: [a, b]).encoded == "HB \(a) 42 h:1 4 \(a),\(b)")
        #expect(PeerMessage.heartbeat(Self.f, advertise: "h:1", version: 4, neighbors: nil).encoded == "HB \(a) 42 h:1 4 =")
        #expect(PeerMessage.state(Self.f, rooms: [], claims: []).encoded == "STATE \(a) 42 - -")
        #expect(PeerMessage.state(Self.f, rooms: ["x", "y"], claims: [NameClaim(name: "al", ts: 5)]).encoded == "STATE \(a) 42 x,y al:5")
        #expect(PeerMessage.room(Self.f, joined: false, room: "x").encoded == "ROOM \(a) 42 - x")
        #expect(PeerMessage.reply(Self.f, claimant: b, NameClaim(name: "al", ts: 5), granted: true).encoded == "REPLY \(a) 42 \(b) al 5 yes")
        #expect(PeerMessage.chat(Self.f, room: "x", user: "Al", text: "a b").encoded == "MSG \(a) 42 x Al a b")
        #expect(PeerMessage.load(Self.f, sessions: 3, rooms: [RoomCount(room: "x", members: 3)]).encoded == "LOAD \(a) 42 3 x:3")
        #expect(PeerMessage.load(Self.f, sessions: 0, rooms: []).encoded == "LOAD \(a) 42 0 -")
    }

    /// Chat text is the rest of the line: whatever valid text the hub relays must come back
    /// unchanged, including text that begins with a combining mark or a joiner.
    @Test(arguments: ["\u{301}accent first", "\u{200D}joiner", "\u{FE0F}selector", "x \u{301}"])
    func chatTextStartingWithExtendingCharacterRoundTrips(_ text: String) throws {
        let msg = PeerMessage.chat(Self.f, room: "r", user: "u", text: text)
        let back = try PeerMessage.decode(msg.encoded)
        #expect(back == msg)
    }

    @Test(arguments: [
        // unknown verbs and versions
        "", " ", "FOO 0123456789abcdef 1", "hb 0123456789abcdef 1 h:1 -", "TCPCHAT-PEER/1 HELLO 0123456789abcdef h:1 n open",
        "TCPCHAT-PEER/2 HELLO 0123456789abcdef h:1 n open", "HB 0123456789abcdef 1 h:1 x =", "HB 0123456789abcdef 1 h:1 1 ==",
        "HB 0123456789abcdef 1 h:1 -1 -", "HB 0123456789abcdef 1 h:1 1 =,0123456789abcdef", "HB 0123456789abcdef 1 h:1 =",
        "MSG\t0123456789abcdef 1 r u t",
        // wrong field counts
        "BYE", "BYE 0123456789abcdef", "BYE 0123456789abcdef 1 2", "CLAIM 0123456789abcdef 1 alice",
        "CLAIM 0123456789abcdef 1 alice 5 6", "REPLY 0123456789abcdef 1 fedcba9876543210 alice 5",
        "MSG 0123456789abcdef 1 r u", "MSG 0123456789abcdef 1", "HB 0123456789abcdef 1 h:1", "STATE 0123456789abcdef 1 -",
        "ROOM 0123456789abcdef 1 +", "TCPCHAT-PEER/3 HELLO 0123456789abcdef h:1 n", "TCPCHAT-PEER/2",
        "BYE  0123456789abcdef 1", "BYE 0123456789abcdef  1", "BYE 0123456789abcdef 1 ",
        // bad node ids
        "BYE 0123456789ABCDEF 1", "BYE 0123456789abcde 1", "BYE 0123456789abcdef0 1", "BYE 0123456789abcdeg 1", "BYE - 1",
        "REPLY 0123456789abcdef 1 FEDCBA9876543210 alice 5 yes", "HB 0123456789abcdef 1 h:1 1 0123456789abcdef,xyz",
        "TCPCHAT-PEER/3 HELLO 0123456789abcdeF h:1 n open",
        // non-numeric or out-of-range numbers
        "BYE 0123456789abcdef x", "BYE 0123456789abcdef -1", "BYE 0123456789abcdef 1.5", "BYE 0123456789abcdef 18446744073709551616",
        "BYE 0123456789abcdef 0x10", "BYE 0123456789abcdef 9223372036854775808", "BYE 0123456789abcdef 18446744073709551615", "CLAIM 0123456789abcdef 1 alice five", "STATE 0123456789abcdef 1 - alice:x",
        "STATE 0123456789abcdef 1 - alice:", "RELEASE 0123456789abcdef 1 alice -5",
        // a key where lowercase is required, and names out of shape
        "CLAIM 0123456789abcdef 1 Alice 5", "RELEASE 0123456789abcdef 1 aLice 5", "REPLY 0123456789abcdef 1 fedcba9876543210 ALICE 5 no",
        "ROOM 0123456789abcdef 1 + Lobby", "STATE 0123456789abcdef 1 Lobby -", "STATE 0123456789abcdef 1 - Alice:5",
        "MSG 0123456789abcdef 1 Lobby alice hi", "MSG 0123456789abcdef 1 r al-ice hi", "MSG 0123456789abcdef 1 r-1 alice hi",
        "CLAIM 0123456789abcdef 1 \(String(repeating: "a", count: 33)) 5", "ROOM 0123456789abcdef 1 + \(String(repeating: "r", count: 65))",
        "STATE 0123456789abcdef 1 - :5", "STATE 0123456789abcdef 1 - alice5", "CLAIM 0123456789abcdef 1 älice 5",
        // bad addresses
        "HB 0123456789abcdef 1 nohost 1 -", "HB 0123456789abcdef 1 :8888 1 -", "HB 0123456789abcdef 1 h:99999 1 -", "HB 0123456789abcdef 1 h:x 1 -",
        "HB 0123456789abcdef 1 h: 1 -", "TCPCHAT-PEER/3 HELLO 0123456789abcdef localhost n open",
        "HB 0123456789abcdef 1 \(String(repeating: "h", count: 300)):1 1 -",
        // empty list items
        "HB 0123456789abcdef 1 h:1 0123456789abcdef,", "HB 0123456789abcdef 1 h:1 ,0123456789abcdef", "STATE 0123456789abcdef 1 a,,b -",
        "STATE 0123456789abcdef 1 - alice:1,", "STATE 0123456789abcdef 1 , -", "HB 0123456789abcdef 1 h:1 ",
        // LOAD out of shape
        "LOAD 0123456789abcdef 1 3", "LOAD 0123456789abcdef 1 x -", "LOAD 0123456789abcdef 1 -1 -", "LOAD 0123456789abcdef 1 3 lobby",
        "LOAD 0123456789abcdef 1 3 Lobby:2", "LOAD 0123456789abcdef 1 3 lobby:x", "LOAD 0123456789abcdef 1 3 lobby:2,",
        "LOAD 0123456789abcdef 1 3 lobby:9223372036854775808",
        // bad enumerations
        "REPLY 0123456789abcdef 1 fedcba9876543210 alice 5 maybe", "REPLY 0123456789abcdef 1 fedcba9876543210 alice 5 YES",
        "REPLY 0123456789abcdef 1 fedcba9876543210 alice 5 ", "ROOM 0123456789abcdef 1 * lobby", "ROOM 0123456789abcdef 1 ++ lobby",
        "TCPCHAT-PEER/3 HELLO 0123456789abcdef h:1 n closed", "TCPCHAT-PEER/2 HELO 0123456789abcdef h:1 n open",
        "TCPCHAT-PEER/3 HELLO 0123456789abcdef h:1  open",
        // Addresses that could drive a terminal, port 0, nonces outside letters and digits.
        "TCPCHAT-PEER/3 HELLO 0123456789abcdef \u{1b}]0;PWNED\u{07}:1 n open", "HB 0123456789abcdef 1 h\u{1b}[2J:1 -",
        "HB 0123456789abcdef 1 h:0 -", "HB 0123456789abcdef 1 h:65536 -", "HB 0123456789abcdef 1 [zz]:1 -",
        "TCPCHAT-PEER/3 HELLO 0123456789abcdef h:1 n|x open", "TCPCHAT-PEER/3 HELLO 0123456789abcdef h:1 n-x open",
        // Counts past anything a node can hold: summing them must never overflow.
        "LOAD 0123456789abcdef 1 9223372036854775807 -", "LOAD 0123456789abcdef 1 1 r:9223372036854775807",
        "LOAD 0123456789abcdef 1 \(Limits.maxWireCount + 1) -",
        "HB 0123456789abcdef 1 h:1 " + (0...Limits.maxClusterNodes).map { String(format: "%016x", $0) }.joined(separator: ","), "TCPCHAT-PEER/3 HELLO 0123456789abcdef h:1 \(String(repeating: "n", count: 129)) open",
    ])
    func malformedLinesThrow(_ line: String) {
        #expect(throws: PeerCodecError.self) { try PeerMessage.decode(line) }
    }

    /// Random lines, from noise to near misses built of valid tokens: decoding never
    /// crashes, and whatever decodes re-encodes to a line that decodes to the same message.
    @Test(arguments: 0..<8)
    func randomLinesNeverCrash(seed: Int) {
        var rng = ClusterRNG(seed: UInt64(9000 + seed))
        let verbs = Array(PeerMessage.verbs.keys) + ["HELLO", "X", "", "MSG", "STATE"]
        let tokens = ["0123456789abcdef", "fedcba9876543210", "0", "1", "42", "18446744073709551615", "-", "+", "yes", "no",
                      "alice", "Alice", "lobby", "a,b", "a,,b", "alice:5", "alice:5,bob:6", "h:1", "[::1]:8888", ":", "::",
                      "HELLO", "open", "secret", "", " ", "\u{301}", "é", "😀", "\t", "\u{1B}", "\u{0}", "a:b:c", ",", "1,2", "lobby:2", "lobby:2,a:1", "9223372036854775807", "9223372036854775808"]
        let alphabet = Array("abcdefABCDEF0123456789 :,-+/\t\u{1B}\u{0}é😀\u{301}")
        var decoded = 0
        for _ in 0..<2000 {
            var line: String
            switch Int.random(in: 0..<3, using: &rng) {
            case 0:
                line = String((0..<Int.random(in: 0..<40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            default:
                line = verbs.randomElement(using: &rng)!
                if line == PeerMessage.helloPrefix && Bool.random(using: &rng) { line += " HELLO" }
                for _ in 0..<Int.random(in: 0..<8, using: &rng) {
                    line += (Int.random(in: 0..<10, using: &rng) == 0 ? "  " : " ") + tokens.randomElement(using: &rng)!
                }
            }
            guard let msg = try? PeerMessage.decode(line) else { continue }
            decoded += 1
            let again = try? PeerMessage.decode(msg.encoded)
            #expect(again == msg, "seed \(seed): \(line.debugDescription) decoded, its encoding \(msg.encoded.debugDescription) did not")
        }
        #expect(decoded > 0, "seed \(seed): the generator never produced a valid line")
    }

    @Test func nodeIDsAreSixteenLowercaseHexDigits() {
        var rng = ClusterRNG(seed: 5)
        for _ in 0..<200 {
            let id = NodeID.random(using: &rng)
            #expect(NodeID(id.text) == id)
            #expect(id.text.utf8.count == 16)
        }
        for bad in ["", "0123456789abcde", "0123456789abcdef0", "0123456789ABCDEF", "0123456789abcdeg", "０123456789abcde"] {
            #expect(NodeID(bad) == nil, "\(bad)")
        }
        #expect(NodeID("0000000000000001")! < NodeID("000000000000000a")!)
    }

    /// The runtime reads HB lines with `PeerHeartbeat` (bytes, no Strings per id); it must
    /// accept and refuse exactly what `decode` does, and read the same fields.
    @Test(arguments: [
        "HB 0123456789abcdef 1 h:1 1 -", "HB 0123456789abcdef 42 10.0.0.1:8888 7 =",
        "HB 0123456789abcdef 42 [::1]:9 3 0123456789abcdef,fedcba9876543210", "HB 0123456789abcdef 007 h:1 0010 -",
        "HB 0123456789abcdef 9223372036854775807 h:1 9223372036854775807 =",
        // malformed, each for one reason
        "HB", "HB ", "HB 0123456789abcdef 1 h:1 1", "HB 0123456789abcdef 1 h:1 1 ", "HB 0123456789abcde 1 h:1 1 -",
        "HB 0123456789ABCDEF 1 h:1 1 -", "HB 0123456789abcdef  h:1 1 -", "HB 0123456789abcdef -1 h:1 1 -",
        "HB 0123456789abcdef 9223372036854775808 h:1 1 -", "HB 0123456789abcdef 1 h:0 1 -", "HB 0123456789abcdef 1 h:1 x -",
        "HB 0123456789abcdef 1 h:1 1 ==", "HB 0123456789abcdef 1 h:1 1 --", "HB 0123456789abcdef 1 h:1 1 0123456789abcdef,",
        "HB 0123456789abcdef 1 h:1 1 ,0123456789abcdef", "HB 0123456789abcdef 1 h:1 1 0123456789abcdef 0123456789abcdef",
        "HB 0123456789abcdef 1 h\u{1B}:1 1 -", "HB 0123456789abcdef 1 h:1 1 \(Array(repeating: "0123456789abcdef", count: 513).joined(separator: ","))",
    ])
    func heartbeatBytePathMatchesDecode(line: String) {
        let general = try? PeerMessage.decode(line)
        var copy = line
        let fast: PeerMessage?? = copy.withUTF8 { u in try? PeerHeartbeat.parse(UnsafeRawBufferPointer(u), advertise: { _ in nil }) }
        // Known address: the same answer, with the known String reused.
        let known: PeerMessage?? = copy.withUTF8 { u in try? PeerHeartbeat.parse(UnsafeRawBufferPointer(u), advertise: { _ in "h:1" }) }
        #expect((fast ?? nil) == general, "\(line)")
        #expect((known ?? nil) == general, "\(line)")
    }

    @Test func hybridClockNeverGoesBackAndPassesObservedTimes() {
        var c = HybridClock()
        let t1 = c.now(wallMs: 1000)
        #expect(t1 == HybridClock.pack(ms: 1000, counter: 0))
        let t2 = c.now(wallMs: 1000)
        #expect(t2 > t1)
        let t3 = c.now(wallMs: 999)           // wall clock stepped back
        #expect(t3 > t2)
        c.observe(HybridClock.pack(ms: 5000, counter: 3), wallMs: 1001)
        let t4 = c.now(wallMs: 1001)
        #expect(t4 > HybridClock.pack(ms: 5000, counter: 3))
        let t5 = c.now(wallMs: 6000)
        #expect(t5 == HybridClock.pack(ms: 6000, counter: 0))
    }

    @Test func hybridClockDoesNotFollowATimestampFarAhead() {
        var c = HybridClock()
        _ = c.now(wallMs: 1000)
        c.observe(UInt64(Int64.max), wallMs: 1000)
        #expect(c.last < HybridClock.pack(ms: 1001, counter: 0))
        // Within the allowed drift it is followed.
        let ahead = HybridClock.pack(ms: 1000 + Tunables.maxClockDriftMs, counter: 7)
        c.observe(ahead, wallMs: 1000)
        #expect(c.now(wallMs: 1000) == ahead + 1)
    }
}
