internal import CHiredis

/// A command written to a hiredis context and not yet answered.
struct PendingCommand {
    enum Completion {
        /// ``RedisConnection/send(_:completion:)``: any reply.
        case reply((Result<RedisReply, RedisError>) -> Void)
        /// `GET`: a bulk string or nil.
        case bulkString((Result<[UInt8]?, RedisError>) -> Void)
        /// `SET`: the status `OK`.
        case ok((Result<Void, RedisError>) -> Void)
        /// `AUTH`, `SELECT` or `PING` sent by the connection itself after connecting.
        case handshake(isLast: Bool)
    }

    /// When the command times out, in `DispatchTime` uptime nanoseconds.
    let deadline: UInt64
    let completion: Completion
}

extension RedisReply {
    /// Deep-copies a hiredis reply. hiredis frees it when the callback returns.
    init(copying reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .string(copyBytes(r))
        case REDIS_REPLY_STATUS:
            self = .status(copyString(r))
        case REDIS_REPLY_ERROR:
            self = .error(copyString(r))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = r.element[i] {
                    elements.append(RedisReply(copying: element))
                } else {
                    elements.append(.null)
                }
            }
            self = .array(elements)
        default:  // REDIS_REPLY_NIL; hiredis 0.14 knows no other type.
            self = .null
        }
    }
}

extension PendingCommand.Completion {
    /// Completes with a reply from the server. `bulkBytes`: a top-level bulk string's bytes, already
    /// copied out of hiredis's buffer (its `str` is then NULL; see `BulkStringSink`).
    func complete(with reply: UnsafePointer<redisReply>, bulkBytes: [UInt8]? = nil) {
        let r = reply.pointee
        switch self {
        case .reply(let completion):
            if r.type == REDIS_REPLY_ERROR {
                completion(.failure(.server(copyString(r))))
            } else if let bulkBytes, r.type == REDIS_REPLY_STRING {
                completion(.success(.string(bulkBytes)))
            } else {
                completion(.success(RedisReply(copying: reply)))
            }
        case .bulkString(let completion):
            switch r.type {
            case REDIS_REPLY_STRING: completion(.success(bulkBytes ?? copyBytes(r)))
            case REDIS_REPLY_NIL: completion(.success(nil))
            case REDIS_REPLY_ERROR: completion(.failure(.server(copyString(r))))
            default: completion(.failure(.protocolError("expected a bulk string, got \(typeName(r.type))")))
            }
        case .ok(let completion):
            switch r.type {
            case REDIS_REPLY_STATUS: completion(.success(()))
            case REDIS_REPLY_ERROR: completion(.failure(.server(copyString(r))))
            default: completion(.failure(.protocolError("expected status OK, got \(typeName(r.type))")))
            }
        case .handshake:
            preconditionFailure("handshake replies are handled by the connection")
        }
    }

    /// Completes with an error that the connection decided on (no reply will come).
    func fail(_ error: RedisError) {
        switch self {
        case .reply(let completion): completion(.failure(error))
        case .bulkString(let completion): completion(.failure(error))
        case .ok(let completion): completion(.failure(error))
        case .handshake: break
        }
    }
}

private func copyBytes(_ r: redisReply) -> [UInt8] {
    guard let str = r.str, r.len > 0 else { return [] }
    return [UInt8](UnsafeRawBufferPointer(start: str, count: r.len))
}

private func copyString(_ r: redisReply) -> String {
    guard let str = r.str, r.len > 0 else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: str, count: r.len), as: UTF8.self)
}

private func typeName(_ type: Int32) -> String {
    switch type {
    case REDIS_REPLY_STRING: "bulk string"
    case REDIS_REPLY_ARRAY: "array"
    case REDIS_REPLY_INTEGER: "integer"
    case REDIS_REPLY_NIL: "nil"
    case REDIS_REPLY_STATUS: "status"
    case REDIS_REPLY_ERROR: "error"
    default: "type \(type)"
    }
}
