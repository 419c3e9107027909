// Rendering a RebuDataset as JSON Lines.

extension RebuDataset {
    /// The whole `topic` stream as JSON Lines bytes (one compact object per line, each line
    /// ending in `\n`), in arrival order. Meant for tests and small data sets; use
    /// `write(_:to:)` for large ones.
    public func jsonLines(_ topic: RebuTopic) -> [UInt8] {
        var out: [UInt8] = []
        render(topic, flushAt: Int.max) { chunk in out = chunk }
        return out
    }

    /// Writes the `topic` stream to the file at `path` (created or truncated; missing parent
    /// directories are created) and returns what was written. Output goes through a 1 MiB
    /// buffer.
    public func write(_ topic: RebuTopic, to path: String) throws -> RebuFileSummary {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]))
        }
        let file = try OutputFile(path: path)
        var lines = 0
        var bytes = 0
        do {
            (lines, bytes) = try render(topic, flushAt: 1 << 20) { chunk in try file.write(chunk) }
        } catch {
            file.closeIgnoringErrors()
            throw error
        }
        try file.close()
        return RebuFileSummary(topic: topic, path: path, lines: lines, bytes: bytes)
    }

    /// Renders `topic` line by line into a buffer; hands the buffer to `sink` whenever it
    /// holds at least `flushAt` bytes, and once at the end. Returns (lines, bytes).
    @discardableResult
    func render(
        _ topic: RebuTopic, flushAt: Int, _ sink: ([UInt8]) throws -> Void
    ) rethrows -> (Int, Int) {
        let vocab = Vocabulary()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(flushAt == Int.max ? lineCount(topic) * 256 : flushAt + 8192)
        var total = 0
        let order: [Int32]
        switch topic {
        case .rides: order = rideOrder
        case .tickets: order = ticketOrder
        case .appEvents: order = appOrder
        }
        for index in order {
            switch topic {
            case .rides: renderRide(Int(index), into: &buffer, vocab)
            case .tickets: renderTicket(Int(index), into: &buffer, vocab)
            case .appEvents: renderAppEvent(Int(index), into: &buffer, vocab)
            }
            if buffer.count >= flushAt {
                total += buffer.count
                try sink(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        if !buffer.isEmpty || total == 0 {
            total += buffer.count
            try sink(buffer)
        }
        return (order.count, total)
    }

    // MARK: - rides

    func renderRide(_ i: Int, into b: inout [UInt8], _ vocab: Vocabulary) {
        let ride = rides[i]
        b.append("{\"event_type\":")
        b.append(contentsOf: vocab.rideTypes[Int(ride.outcome)])
        b.append(",\"time_utc\":\"")
        b.appendEpochNanos(ride.end)
        b.append("\",\"ride_id\":\"r")
        b.appendPadded(UInt64(i + 1), width: rideWidth)
        b.append("\",\"user_id\":\"u")
        b.appendPadded(UInt64(ride.user) + 1, width: userWidth)
        b.append("\",\"driver_id\":\"d")
        b.appendPadded(UInt64(ride.driver) + 1, width: 6)
        b.append("\",\"city\":")
        b.append(contentsOf: vocab.cities[Int(ride.city)])
        b.append(",\"requested_utc\":\"")
        b.appendEpochNanos(ride.requested)
        b.append("\",\"start_utc\":\"")
        b.appendEpochNanos(ride.start)
        b.append("\",\"fare\":")
        b.appendCents(ride.fareCents)
        b.append(",\"rating\":")
        if ride.rating < 0 {
            b.append("null")
        } else {
            b.append(0x30 &+ UInt8(ride.rating))
        }
        b.append("}\n")
    }

    // MARK: - tickets

    func renderTicket(_ i: Int, into b: inout [UInt8], _ vocab: Vocabulary) {
        let ticket = tickets[i]
        b.append("{\"event_type\":\"support_ticket\",\"time_utc\":\"")
        b.appendEpochNanos(ticket.time)
        b.append("\",\"ticket_id\":\"t")
        b.appendPadded(UInt64(i + 1), width: ticketWidth)
        b.append("\",\"user_id\":\"u")
        b.appendPadded(UInt64(ticket.user) + 1, width: userWidth)
        b.append("\",\"channel\":")
        b.append(contentsOf: vocab.channels[Int(ticket.channel)])
        b.append(",\"message\":")
        let messages = ticket.aboutRide ? vocab.rideMessages : vocab.generalMessages
        b.append(contentsOf: messages[Int(ticket.message)])
        b.append("}\n")
    }

    // MARK: - app events

    /// A 32-bit device number, unique per (user, device) for up to 2^30 users: a seeded
    /// bijection (lowbias32 by C. Wellons) of `user * 4 + device`.
    static func deviceNumber(user: Int, device: Int, seed: UInt64) -> UInt32 {
        var x = UInt32(truncatingIfNeeded: user &* 4 &+ device) ^ UInt32(truncatingIfNeeded: SplitMix64.mix(seed))
        x ^= x >> 16
        x = x &* 0x7FEB_352D
        x ^= x >> 15
        x = x &* 0x846C_A68B
        x ^= x >> 16
        return x
    }

    func renderAppEvent(_ e: Int, into b: inout [UInt8], _ vocab: Vocabulary) {
        let v = Int(eventVisit[e])
        let user = Int(visitUser[v])
        let device = Int(visitDevice[v])
        let kind = eventKind[e]
        let time = eventTime[e]
        let deviceSalt = SplitMix64.mix(
            SplitMix64.mix(config.seed ^ 0x00DE_71CE_5A17_0001) &+ UInt64(user * 4 + device))
        var r = SplitMix64(seed: SplitMix64.mix(config.seed ^ 0xE7E7_0DE7_A115_0002) &+ UInt64(e))

        b.append("{\"event_type\":")
        b.append(contentsOf: vocab.appEventTypes[Int(kind)])
        b.append(",\"time_utc\":\"")
        b.appendEpochNanos(time)
        b.append("\",\"user_id\":\"u")
        b.appendPadded(UInt64(user) + 1, width: userWidth)
        b.append("\",\"device_id\":\"dev-")
        b.appendHex(UInt64(RebuDataset.deviceNumber(user: user, device: device, seed: config.seed)), digits: 8)
        b.append("\",\"event_details\":{")

        switch kind {
        case AppEventKind.login:
            b.append("\"method\":")
            b.append(contentsOf: vocab.loginMethods[r.below(vocab.loginMethods.count)])
            b.append(r.chance(960) ? ",\"success\":true,\"locale\":" : ",\"success\":false,\"locale\":")
            b.append(contentsOf: vocab.locales[Int(userHomeCity[user])])
        case AppEventKind.logout:
            b.append("\"reason\":")
            b.append(contentsOf: vocab.logoutReasons[r.below(vocab.logoutReasons.count)])
            b.append(",\"screen\":")
            b.append(contentsOf: vocab.screens[r.below(vocab.screens.count)])
        case AppEventKind.screenView:
            b.append("\"screen\":")
            b.append(contentsOf: vocab.screens[r.below(vocab.screens.count)])
            if r.chance(250) {
                b.append(",\"previous_screen\":")
                b.append(contentsOf: vocab.screens[r.below(vocab.screens.count)])
            }
            b.append(",\"load_ms\":")
            b.appendDecimal(UInt64(40 + r.below(r.chance(900) ? 400 : 4000)))
        case AppEventKind.buttonPressed:
            // Index 0 (request_ride) is reserved for the presses that requested a ride.
            let button = eventSub[e] == AppEventKind.subRequestRide ? 0 : 1 + r.below(vocab.buttonTypes.count - 1)
            b.append("\"button_type\":")
            b.append(contentsOf: vocab.buttonTypes[button])
            b.append(",\"screen\":")
            b.append(contentsOf: vocab.buttonScreens[button])
            if button == 0 {
                b.append(",\"ride_type\":")
                b.append(contentsOf: vocab.rideProducts[r.below(vocab.rideProducts.count)])
            }
            b.append(",\"position\":{\"x\":")
            b.appendDecimal(UInt64(r.below(1080)))
            b.append(",\"y\":")
            b.appendDecimal(UInt64(r.below(1920)))
            b.append("}")
        case AppEventKind.search:
            b.append("\"query\":")
            b.append(contentsOf: vocab.searchQueries[r.below(vocab.searchQueries.count)])
            b.append(",\"results\":")
            b.appendDecimal(UInt64(r.below(21)))
            b.append(",\"latency_ms\":")
            b.appendDecimal(UInt64(30 + r.below(600)))
        case AppEventKind.appError:
            let err = r.below(vocab.errorMessages.count)
            b.append("\"code\":")
            b.appendDecimal(UInt64(Words.errors[err].0))
            b.append(",\"message\":")
            b.append(contentsOf: vocab.errorMessages[err])
            b.append(",\"screen\":")
            b.append(contentsOf: vocab.errorScreens[err])
            b.append(r.chance(30) ? ",\"fatal\":true" : ",\"fatal\":false")
        case AppEventKind.purchase:
            let items = 1 + (r.chance(300) ? 1 + (r.chance(300) ? 1 : 0) : 0)
            var totalCents: Int64 = 0
            // Distinct SKUs: first + k * step (mod count), step in 1..<count, k < 3 <= count.
            let firstSku = r.below(vocab.skus.count)
            let step = 1 + r.below(vocab.skus.count - 1)
            b.append("\"purchased_items\":[")
            for item in 0..<items {
                let sku = (firstSku + item * step) % vocab.skus.count
                let qty = r.chance(850) ? 1 : 2 + r.below(3)
                let price = Words.skus[sku].1
                totalCents += price * Int64(qty)
                b.append(item == 0 ? "{\"sku\":" : ",{\"sku\":")
                b.append(contentsOf: vocab.skus[sku])
                b.append(",\"qty\":")
                b.appendDecimal(UInt64(qty))
                b.append(",\"price\":")
                b.appendCents(price)
                b.append("}")
            }
            b.append("],\"total\":")
            b.appendCents(totalCents)
            b.append(",\"currency\":\"USD\",\"payment_method\":")
            b.append(contentsOf: vocab.paymentMethods[r.below(vocab.paymentMethods.count)])
        default:  // notification_opened
            b.append("\"campaign\":")
            b.append(contentsOf: vocab.campaigns[r.below(vocab.campaigns.count)])
            b.append(",\"screen\":\"home\"")
        }

        // Context shared by every kind: app version (rolls out weekly, some devices lag),
        // OS and network.
        let weeks = Int((time - startNanos) / (7 * RebuDataset.day))
        let lag = Int(deviceSalt % 3)
        b.append(",\"app_version\":\"5.")
        b.appendDecimal(UInt64(8 + max(0, weeks - lag)))
        b.append(UInt8(ascii: "."))
        b.appendDecimal((deviceSalt >> 4) % 4)
        b.append("\",\"os\":")
        let osIndex = Int((deviceSalt >> 8) % 4)
        if deviceSalt % 10 < 6 {
            b.append(contentsOf: vocab.androidVersions[osIndex])
        } else {
            b.append(contentsOf: vocab.iosVersions[osIndex])
        }
        b.append(",\"network\":")
        b.append(contentsOf: vocab.networks[r.below(vocab.networks.count)])
        b.append("}}\n")
    }
}
