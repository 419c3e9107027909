// A small C shim over simdjson's DOM parser: validate a whole document, then extract only
// the fields a caller compiled. Swift cannot call simdjson's C++ API directly with ease,
// and the hot path wants one call per line with no allocation.
#include "kappa_json.h"
#include <simdjson.h>
#include <string>
#include <string_view>
#include <vector>
#include <cstring>

using namespace simdjson;

struct kj_parser {
    dom::parser dom;
    ondemand::parser ondemand;
    explicit kj_parser(size_t max) : dom(max), ondemand(max) {}
};

namespace {
struct step {
    bool is_index;
    size_t index;
    std::string key;
};
}

struct kj_fields {
    std::vector<std::vector<step>> paths;
};

extern "C" kj_parser *kj_parser_create(size_t max_document_bytes) {
    try {
        auto *p = new kj_parser(max_document_bytes);
        if (p->dom.allocate(max_document_bytes < 4096 ? max_document_bytes : 4096) != SUCCESS) {
            delete p;
            return nullptr;
        }
        return p;
    } catch (...) {
        return nullptr;
    }
}

extern "C" void kj_parser_destroy(kj_parser *parser) { delete parser; }

static bool compile(const char *path, std::vector<step> &out) {
    std::string_view s(path);
    if (s.empty()) return false;
    size_t i = 0;
    while (i < s.size()) {
        if (s[i] == '[') {
            size_t close = s.find(']', i);
            if (close == std::string_view::npos || close == i + 1) return false;
            size_t n = 0;
            for (size_t j = i + 1; j < close; j++) {
                if (s[j] < '0' || s[j] > '9') return false;
                n = n * 10 + size_t(s[j] - '0');
            }
            out.push_back(step{true, n, {}});
            i = close + 1;
            if (i < s.size() && s[i] == '.') i++;
            continue;
        }
        size_t end = i;
        while (end < s.size() && s[end] != '.' && s[end] != '[') end++;
        if (end == i) return false;
        out.push_back(step{false, 0, std::string(s.substr(i, end - i))});
        i = end;
        if (i < s.size() && s[i] == '.') i++;
    }
    return !out.empty();
}

extern "C" kj_fields *kj_fields_create(const char *const *paths, size_t count) {
    auto *f = new kj_fields();
    for (size_t i = 0; i < count; i++) {
        std::vector<step> steps;
        if (!compile(paths[i], steps)) {
            delete f;
            return nullptr;
        }
        f->paths.push_back(std::move(steps));
    }
    return f;
}

extern "C" void kj_fields_destroy(kj_fields *fields) { delete fields; }

// The rare path: a non-integer number's exact digits. The DOM keeps only a double, so
// walk the same path with the on-demand parser, whose raw token points into the input.
static void raw_number(kj_parser *parser, const std::vector<step> &path, const uint8_t *data,
                       size_t length, kj_value &v) {
    auto doc = parser->ondemand.iterate(reinterpret_cast<const char *>(data), length, length + KJ_PADDING);
    if (doc.error()) return;
    ondemand::value cur;
    bool first = true;
    for (const auto &s : path) {
        simdjson_result<ondemand::value> next;
        if (first) {
            next = s.is_index ? doc.at(s.index) : doc.find_field_unordered(s.key);
            first = false;
        } else {
            next = s.is_index ? cur.at(s.index) : cur.find_field_unordered(s.key);
        }
        if (next.error()) return;
        cur = next.value_unsafe();
    }
    std::string_view raw = cur.raw_json_token();
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' || raw.back() == '\r'))
        raw.remove_suffix(1);
    v.ptr = reinterpret_cast<const uint8_t *>(raw.data());
    v.len = raw.size();
}

extern "C" int kj_parse_extract(kj_parser *parser, const kj_fields *fields, const uint8_t *data,
                                size_t length, kj_value *out) {
    dom::element root;
    auto err = parser->dom.parse(data, length, false).get(root);
    if (err) return int(err);
    if (!root.is_object()) return KJ_ERR_NOT_OBJECT;
    if (fields == nullptr) return 0;
    for (size_t i = 0; i < fields->paths.size(); i++) {
        kj_value &v = out[i];
        std::memset(&v, 0, sizeof v);
        dom::element cur = root;
        bool found = true;
        for (const auto &s : fields->paths[i]) {
            simdjson_result<dom::element> next = s.is_index ? cur.at(s.index) : cur.at_key(s.key);
            if (next.error()) {
                found = false;
                break;
            }
            cur = next.value_unsafe();
        }
        if (!found) continue;  // KJ_ABSENT
        switch (cur.type()) {
        case dom::element_type::STRING: {
            std::string_view sv = cur.get_string().value_unsafe();
            v.kind = KJ_STRING;
            v.ptr = reinterpret_cast<const uint8_t *>(sv.data());
            v.len = sv.size();
            break;
        }
        case dom::element_type::INT64:
            v.kind = KJ_INT;
            v.int_value = cur.get_int64().value_unsafe();
            v.double_value = double(v.int_value);
            break;
        case dom::element_type::UINT64:
        case dom::element_type::DOUBLE:
            v.kind = KJ_FLOAT;
            v.double_value = cur.get_double().value_unsafe();
            raw_number(parser, fields->paths[i], data, length, v);
            break;
        case dom::element_type::NULL_VALUE:
            v.kind = KJ_NULL;
            break;
        case dom::element_type::BOOL:
            v.kind = KJ_BOOL;
            v.int_value = cur.get_bool().value_unsafe() ? 1 : 0;
            break;
        case dom::element_type::OBJECT:
            v.kind = KJ_OBJECT;
            break;
        case dom::element_type::ARRAY:
            v.kind = KJ_ARRAY;
            break;
        }
    }
    return 0;
}

// On-demand: touches only the bytes on the way to the fields asked for. For records
// that were fully validated when they were produced (everything in a Kappa log).
static int classify(ondemand::value &v, kj_value &out) {
    ondemand::json_type t;
    if (auto e = v.type().get(t)) return int(e);
    switch (t) {
    case ondemand::json_type::string: {
        std::string_view sv;
        if (auto e = v.get_string().get(sv)) return int(e);
        out.kind = KJ_STRING;
        out.ptr = reinterpret_cast<const uint8_t *>(sv.data());
        out.len = sv.size();
        return 0;
    }
    case ondemand::json_type::number: {
        ondemand::number_type nt;
        if (auto e = v.get_number_type().get(nt)) return int(e);
        if (nt == ondemand::number_type::signed_integer) {
            int64_t i;
            if (auto e = v.get_int64().get(i)) return int(e);
            out.kind = KJ_INT;
            out.int_value = i;
            out.double_value = double(i);
            return 0;
        }
        std::string_view raw = v.raw_json_token();
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' || raw.back() == '\r' || raw.back() == ',' || raw.back() == '}' || raw.back() == ']'))
            raw.remove_suffix(1);
        double d;
        if (auto e = v.get_double().get(d)) return int(e);
        out.kind = KJ_FLOAT;
        out.double_value = d;
        out.ptr = reinterpret_cast<const uint8_t *>(raw.data());
        out.len = raw.size();
        return 0;
    }
    case ondemand::json_type::null: out.kind = KJ_NULL; return 0;
    case ondemand::json_type::boolean: {
        bool b;
        if (auto e = v.get_bool().get(b)) return int(e);
        out.kind = KJ_BOOL;
        out.int_value = b ? 1 : 0;
        return 0;
    }
    case ondemand::json_type::object: out.kind = KJ_OBJECT; return 0;
    case ondemand::json_type::array: out.kind = KJ_ARRAY; return 0;
    default: return 0;
    }
}

extern "C" int kj_lazy_extract(kj_parser *parser, const kj_fields *fields, const uint8_t *data, size_t length, kj_value *out) {
    ondemand::document doc;
    if (auto e = parser->ondemand.iterate(reinterpret_cast<const char *>(data), length, length + KJ_PADDING).get(doc)) return int(e);
    ondemand::object obj;
    if (auto e = doc.get_object().get(obj)) return e == INCORRECT_TYPE ? KJ_ERR_NOT_OBJECT : int(e);
    if (fields == nullptr) return 0;
    for (size_t i = 0; i < fields->paths.size(); i++) {
        kj_value &v = out[i];
        std::memset(&v, 0, sizeof v);
        const auto &path = fields->paths[i];
        if (path[0].is_index) continue;  // an object has no index: absent
        ondemand::value cur;
        auto first = obj.find_field_unordered(path[0].key);
        if (first.error() == NO_SUCH_FIELD) continue;
        if (first.error()) return int(first.error());
        cur = first.value_unsafe();
        bool found = true;
        for (size_t k = 1; k < path.size() && found; k++) {
            const auto &s = path[k];
            if (s.is_index) {
                ondemand::array arr;
                if (cur.get_array().get(arr)) { found = false; break; }
                size_t n = 0;
                found = false;
                for (auto elem : arr) {
                    ondemand::value ev;
                    if (elem.get(ev)) break;
                    if (n++ == s.index) { cur = ev; found = true; break; }
                }
            } else {
                ondemand::object o;
                if (cur.get_object().get(o)) { found = false; break; }
                auto next = o.find_field_unordered(s.key);
                if (next.error()) { found = false; break; }
                cur = next.value_unsafe();
            }
        }
        if (!found) continue;
        if (int e = classify(cur, v)) return e;
    }
    return 0;
}

extern "C" const char *kj_error_message(int code) {
    if (code == KJ_ERR_NOT_OBJECT) return "the JSON value is not an object";
    return error_message(error_code(code));
}
