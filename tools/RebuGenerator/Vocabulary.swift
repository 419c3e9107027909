// Fixed vocabularies of the Rebu data set, and their pre-escaped JSON forms.

/// Event kinds of the `app_events` topic (index into `Vocabulary.appEventTypes`).
enum AppEventKind {
    static let login: UInt8 = 0
    static let logout: UInt8 = 1
    static let screenView: UInt8 = 2
    static let buttonPressed: UInt8 = 3
    static let search: UInt8 = 4
    static let appError: UInt8 = 5
    static let purchase: UInt8 = 6
    static let notificationOpened: UInt8 = 7

    /// Sub-kind of `buttonPressed`: the press that requested a ride (ties the app event to
    /// the ride's `requested_utc`).
    static let subRequestRide: UInt8 = 1

    /// Weights (per mille) of the kinds inside a visit, after its first event.
    static let middleKinds: [UInt8] = [screenView, buttonPressed, search, notificationOpened, appError, purchase]
    static let middleWeights: [Int] = [380, 340, 120, 40, 50, 70]
}

/// Ride outcomes (index into `Vocabulary.rideTypes`).
enum RideOutcome {
    static let completed: UInt8 = 0
    static let cancelled: UInt8 = 1
    static let endedEarly: UInt8 = 2
}

/// Plain-text vocabularies. Kept as Swift strings for readability; `Vocabulary` holds the
/// JSON-escaped bytes the hot path appends.
enum Words {
    static let appEventTypes = [
        "login", "logout", "screen_view", "button_pressed", "search", "app_error", "purchase",
        "notification_opened",
    ]
    static let rideTypes = ["ride_completed", "ride_cancelled", "ride_ended_early"]

    /// Cities with relative popularity and fare multiplier (per mille).
    static let cities = [
        "New York", "San Francisco", "Chicago", "London", "Paris", "Berlin", "São Paulo",
        "Mexico City", "Tokyo", "Sydney", "Toronto", "Zürich",
    ]
    static let cityWeights = [16, 10, 7, 12, 8, 6, 10, 8, 7, 6, 6, 4]
    static let cityFarePerMille: [Int64] = [1200, 1150, 1000, 1100, 1050, 950, 600, 550, 1250, 1050, 950, 1400]
    static let cityLocales = [
        "en_US", "en_US", "en_US", "en_GB", "fr_FR", "de_DE", "pt_BR", "es_MX", "ja_JP", "en_AU",
        "en_CA", "de_CH",
    ]

    static let screens = [
        "home", "ride_tracking", "destination_search", "payment", "ride_history", "profile",
        "settings", "promotions", "driver_details", "help_center", "rate_ride", "wallet",
    ]
    /// (button_type, screen) pairs; index 0 is the ride request.
    static let buttons: [(String, String)] = [
        ("request_ride", "home"), ("confirm_pickup", "home"), ("cancel_ride", "ride_tracking"),
        ("call_driver", "ride_tracking"), ("share_eta", "ride_tracking"),
        ("add_payment_method", "payment"), ("apply_promo", "promotions"), ("rate_driver", "rate_ride"),
        ("open_menu", "home"), ("edit_profile", "profile"), ("contact_support", "help_center"),
        ("schedule_ride", "home"), ("toggle_notifications", "settings"), ("select_ride_type", "home"),
    ]
    static let rideProducts = ["rebuX", "rebuX", "rebuX", "rebuPool", "rebuXL", "rebuBlack"]
    static let loginMethods = ["password", "google", "apple", "facebook", "otp_sms"]
    static let logoutReasons = ["user_initiated", "session_expired", "app_backgrounded", "account_switch"]
    static let networks = ["wifi", "lte", "lte", "3g", "wifi", "edge"]
    static let androidVersions = ["android 6.0.1", "android 5.1.1", "android 6.0", "android 4.4.4"]
    static let iosVersions = ["ios 9.2.1", "ios 9.3", "ios 8.4.1", "ios 9.2"]
    /// (code, message, screen). One message contains a double quote to exercise escaping.
    static let errors: [(Int, String, String)] = [
        (401, "Session token expired", "home"),
        (408, "Request timed out", "destination_search"),
        (429, "Too many requests", "home"),
        (500, "Internal server error", "payment"),
        (502, "Bad gateway", "ride_tracking"),
        (503, "Service temporarily unavailable", "home"),
        (1001, "GPS signal lost", "ride_tracking"),
        (1002, "Payment provider declined the card", "payment"),
        (1003, "Map tiles failed to load", "home"),
        (1004, "Unexpected character '\"' at position 17 in server response", "ride_history"),
    ]
    static let searchQueries = [
        "airport", "Central Station", "Praça da Sé", "Zürich HB", "Times Square", "home", "work",
        "Hotel Adlon", "Shibuya Crossing", "Bondi Beach", "CN Tower", "Café de Flore",
        "Golden Gate Park", "Soho House", "Museo Frida Kahlo", "Wrigley Field",
    ]
    /// (sku, price in cents). Nine entries: the purchase renderer relies on 9 having no
    /// factor 2, so up to three SKUs picked as first + k * step are distinct.
    static let skus: [(String, Int64)] = [
        ("ride_pass_weekly", 450), ("ride_pass_monthly", 1499), ("tip_2", 200), ("tip_5", 500),
        ("priority_pickup", 199), ("gift_card_25", 2500), ("pet_friendly_addon", 300),
        ("carbon_offset", 75), ("airport_fast_lane", 350),
    ]
    static let paymentMethods = ["card", "card", "paypal", "apple_pay", "google_pay", "wallet_balance"]
    static let campaigns = [
        "spring_promo_2016", "weekend_discount", "airport_rides", "refer_a_friend", "rate_your_driver",
        "new_city_launch",
    ]

    static let channels = ["app", "email", "chat", "phone"]
    static let channelWeights = [50, 20, 20, 10]

    /// Ticket messages about a previous ride. One contains a double quote and backslashes.
    static let rideMessages = [
        "My driver cancelled after I waited 15 minutes.",
        "I was charged a cancellation fee but the driver never showed up.",
        "The ride ended early and I was dropped off at the wrong place.",
        "Driver took a much longer route than necessary.",
        "I left my phone in the car, please help me contact the driver.",
        "The fare is higher than the estimate I was shown.",
        "The app says \"payment failed\" but my card was charged, ref C:\\rebu\\pay\\0x1F",
        "Car smelled of smoke and the AC was broken.",
        "Motorista muito educado, mas a corrida foi cobrada duas vezes.",
        "Can I get a receipt for this trip for my expense report?",
        "The driver was great, please pass on my thanks!",
        "My rating was submitted by mistake, can I change it?",
    ]
    /// Ticket messages from users who have not ridden yet.
    static let generalMessages = [
        "How do I add a new payment method?",
        "I can't log in, the verification code never arrives.",
        "The app crashes when I open the promotions screen.",
        "Please delete my account and all my data.",
        "How do I apply a promo code before my first ride?",
        "Why does the app need my location all the time?",
    ]
}

/// JSON-escaped bytes of every vocabulary string (each including its surrounding quotes),
/// built once per render.
struct Vocabulary {
    let appEventTypes: [[UInt8]]
    let rideTypes: [[UInt8]]
    let cities: [[UInt8]]
    let locales: [[UInt8]]
    let screens: [[UInt8]]
    let buttonTypes: [[UInt8]]
    let buttonScreens: [[UInt8]]
    let rideProducts: [[UInt8]]
    let loginMethods: [[UInt8]]
    let logoutReasons: [[UInt8]]
    let networks: [[UInt8]]
    let androidVersions: [[UInt8]]
    let iosVersions: [[UInt8]]
    let errorMessages: [[UInt8]]
    let errorScreens: [[UInt8]]
    let searchQueries: [[UInt8]]
    let skus: [[UInt8]]
    let paymentMethods: [[UInt8]]
    let campaigns: [[UInt8]]
    let channels: [[UInt8]]
    let rideMessages: [[UInt8]]
    let generalMessages: [[UInt8]]

    init() {
        func q(_ list: [String]) -> [[UInt8]] { list.map(jsonQuoted) }
        appEventTypes = q(Words.appEventTypes)
        rideTypes = q(Words.rideTypes)
        cities = q(Words.cities)
        locales = q(Words.cityLocales)
        screens = q(Words.screens)
        buttonTypes = q(Words.buttons.map { $0.0 })
        buttonScreens = q(Words.buttons.map { $0.1 })
        rideProducts = q(Words.rideProducts)
        loginMethods = q(Words.loginMethods)
        logoutReasons = q(Words.logoutReasons)
        networks = q(Words.networks)
        androidVersions = q(Words.androidVersions)
        iosVersions = q(Words.iosVersions)
        errorMessages = q(Words.errors.map { $0.1 })
        errorScreens = q(Words.errors.map { $0.2 })
        searchQueries = q(Words.searchQueries)
        skus = q(Words.skus.map { $0.0 })
        paymentMethods = q(Words.paymentMethods)
        campaigns = q(Words.campaigns)
        channels = q(Words.channels)
        rideMessages = q(Words.rideMessages)
        generalMessages = q(Words.generalMessages)
    }
}

/// `s` as a JSON string literal (quotes included): `"` and `\` are backslash-escaped, control
/// characters use the short escapes or `\u00XX`, everything else (including non-ASCII) is raw
/// UTF-8.
func jsonQuoted(_ s: String) -> [UInt8] {
    var out: [UInt8] = [0x22]
    for b in s.utf8 {
        switch b {
        case 0x22: out += [0x5C, 0x22]
        case 0x5C: out += [0x5C, 0x5C]
        case 0x0A: out += [0x5C, UInt8(ascii: "n")]
        case 0x0D: out += [0x5C, UInt8(ascii: "r")]
        case 0x09: out += [0x5C, UInt8(ascii: "t")]
        case 0x08: out += [0x5C, UInt8(ascii: "b")]
        case 0x0C: out += [0x5C, UInt8(ascii: "f")]
        case 0..<0x20:
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            out += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]]
        default: out.append(b)
        }
    }
    out.append(0x22)
    return out
}
