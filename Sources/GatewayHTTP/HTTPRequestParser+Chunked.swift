// The chunked transfer coding (RFC 9112 §7.1).

extension HTTPRequestParser {
    /// Parses `chunk-size [ chunk-ext ]` and moves to the chunk's data, or to the trailer section
    /// after the last chunk.
    mutating func startChunk(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>) throws(HTTPParseError) {
        var i = line.lowerBound
        var size = 0
        while i < line.upperBound, let digit = ASCII.hexValue(bytes[i]) {
            guard size <= Int.max >> 4 else { throw .badRequest("chunk size too large") }
            size = size << 4 | digit
            i += 1
        }
        guard i > line.lowerBound else { throw .badRequest("invalid chunk size") }

        let extensions = i..<line.upperBound
        if !extensions.isEmpty {
            chunkExtensionBytes += extensions.count
            guard chunkExtensionBytes <= Self.maxChunkExtensionBytes else {
                throw .badRequest("chunk extensions too long")
            }
            try Self.checkChunkExtensions(bytes, extensions)
        }

        if size == 0 {
            state = .trailerLines
            return
        }
        guard size <= limits.maxBodyBytes - body.count else {
            throw HTTPParseError(status: 413, reason: "chunked body exceeds the body limit")
        }
        state = .chunkData(remaining: size)
    }

    /// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`, where
    /// `chunk-ext-val = token / quoted-string`. Extensions are checked, then ignored.
    static func checkChunkExtensions(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) throws(HTTPParseError) {
        let end = range.upperBound
        var i = range.lowerBound
        while i < end {
            i = bytes.skipWhitespace(from: i, to: end)
            guard i < end, bytes[i] == ASCII.semicolon else { throw .badRequest("invalid chunk extension") }
            i = bytes.skipWhitespace(from: i + 1, to: end)
            let nameStart = i
            while i < end, ASCIISet.token.contains(bytes[i]) { i += 1 }
            guard i > nameStart else { throw .badRequest("invalid chunk extension") }

            let afterName = bytes.skipWhitespace(from: i, to: end)
            guard afterName < end, bytes[afterName] == ASCII.equals else { continue }
            i = bytes.skipWhitespace(from: afterName + 1, to: end)
            guard i < end else { throw .badRequest("invalid chunk extension") }
            if bytes[i] == ASCII.quote {
                i = try skipQuotedString(bytes, from: i, to: end)
            } else {
                let valueStart = i
                while i < end, ASCIISet.token.contains(bytes[i]) { i += 1 }
                guard i > valueStart else { throw .badRequest("invalid chunk extension") }
            }
        }
    }

    /// Skips a `quoted-string` (RFC 9110 §5.6.4) starting at the opening quote at `start`.
    /// - Returns: the index after the closing quote.
    static func skipQuotedString(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) throws(HTTPParseError) -> Int {
        var i = start + 1
        while i < end {
            let byte = bytes[i]
            if byte == ASCII.quote { return i + 1 }
            if byte == ASCII.backslash {
                i += 1
                guard i < end else { break }
            }
            // qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text (DQUOTE and "\" only escaped).
            guard ASCII.isFieldValueByte(bytes[i]) else { throw .badRequest("invalid chunk extension") }
            i += 1
        }
        throw .badRequest("unterminated quoted string in chunk extension")
    }
}
