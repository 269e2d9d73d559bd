import Testing
@testable import ChatClient
import TestSupport

@Suite struct LineEditorTests {
    private let erase = "\r\u{1B}[K"

    private func typed(_ text: String, _ editor: inout LineEditor) -> (String, [LineEditor.Event]) {
        let r = editor.feed(Array(text.utf8))
        return (r.output, r.events)
    }

    @Test func typingShowsThePromptAndInput() {
        var e = LineEditor()
        let (out, events) = typed("hello", &e)
        #expect(e.text == "hello")
        #expect(events.isEmpty)
        #expect(out == erase + "> hello")
    }

    @Test func enterSubmitsAndClearsTheLine() {
        var e = LineEditor()
        let (out, events) = typed("hi there\r", &e)
        #expect(events == [.submit("hi there")])
        #expect(e.text == "")
        #expect(out == erase + "> ")
    }

    @Test func emptyEnterSendsNothing() {
        var e = LineEditor()
        let (_, events) = typed("\r\r\n", &e)
        #expect(events.isEmpty)
    }

    @Test func pastedLinesAreSubmittedInOrder() {
        var e = LineEditor()
        let (_, events) = typed("one\rtwo\nthr", &e)
        #expect(events == [.submit("one"), .submit("two")])
        #expect(e.text == "thr")
    }

    @Test func backspaceRemovesAWholeMultiByteCharacter() {
        var e = LineEditor()
        _ = typed("aé日🎉", &e)
        #expect(e.text == "aé日🎉")
        _ = e.feed([0x7F])
        #expect(e.text == "aé日")
        _ = e.feed([0x7F])
        #expect(e.text == "aé")
        let r = e.feed([0x08])   // Ctrl+H too
        #expect(e.text == "a")
        #expect(r.output == erase + "> a")
    }

    @Test func backspaceRemovesABaseWithItsCombiningMark() {
        var e = LineEditor()
        _ = typed("xe\u{301}", &e)   // e + COMBINING ACUTE: one character on screen
        _ = e.feed([0x7F])
        #expect(e.text == "x")
    }

    @Test func multiByteCharacterSplitAcrossReads() {
        var e = LineEditor()
        let bytes = Array("日".utf8)
        _ = e.feed(bytes.prefix(1))
        _ = e.feed(bytes.dropFirst().prefix(1))
        #expect(e.text == "")
        _ = e.feed(bytes.suffix(1))
        #expect(e.text == "日")
    }

    @Test func ctrlUKillsTheLineAndCtrlWAWord() {
        var e = LineEditor()
        _ = typed("hello big world", &e)
        _ = e.feed([0x17])
        #expect(e.text == "hello big ")
        let r = e.feed([0x15])
        #expect(e.text == "")
        #expect(r.output == erase + "> ")
    }

    @Test func ctrlCQuitsAndCtrlDQuitsOnlyOnAnEmptyLine() {
        var e = LineEditor()
        _ = typed("abc", &e)
        #expect(e.feed([0x04]).events.isEmpty)
        #expect(e.feed([0x03]).events == [.quit])
        var f = LineEditor()
        #expect(f.feed([0x04]).events == [.quit])
    }

    @Test func controlBytesAndEscapeSequencesNeverEnterTheLine() {
        var e = LineEditor()
        // Arrow keys (CSI and SS3 forms), Alt+x, TAB, BEL, a C1 control (C2 9B), invalid UTF-8.
        let keys: [UInt8] = [0x1B, 0x5B, 0x41, 0x1B, 0x4F, 0x42, 0x1B, 0x78, 0x09, 0x07, 0xC2, 0x9B, 0xFF, 0x61]
        _ = e.feed(keys)
        #expect(e.text == "a")
    }

    @Test func inputIsCappedAtTheMessageLimit() {
        var e = LineEditor(maxBytes: 4)
        let r = typed("abcdef", &e)
        #expect(e.text == "abcd")
        #expect(r.0.hasSuffix("\u{07}"))
    }

    @Test func incomingMessageIsPrintedAboveThePartialInput() {
        var e = LineEditor()
        _ = typed("half a thou", &e)
        let out = e.show("bob - hello")
        // Erase the prompt row, print the message on its own line, redraw prompt and input.
        #expect(out == erase + "bob - hello\r\n" + erase + "> half a thou")
        #expect(e.text == "half a thou")
        _ = typed("ght\r", &e)
    }

    @Test func longInputShowsItsTailWithoutWrapping() {
        var e = LineEditor(columns: 12)
        _ = typed("abcdefghijklmnop", &e)
        // 12 columns: "> " (2) + "…" (1) + 8 characters, one column spare.
        #expect(e.render() == erase + "> …ijklmnop")
        var w = LineEditor(columns: 10)
        _ = typed("日本語テキスト", &w)
        #expect(w.render() == erase + "> …キスト")   // wide characters count two columns
        #expect(w.text == "日本語テキスト")
    }
}
