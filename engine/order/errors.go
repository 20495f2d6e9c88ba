package order

import "strconv"

// ValidationError reports a request body that breaks the API contract: the
// ingest layer answers it with 400 and the body
// {"error":{"code":Code,"message":Message,"field":Field}}.
//
// Code is one of the snake_case codes listed in api/openapi.yaml and decode.go
// (invalid_json, not_an_object, trailing_data, invalid_utf8, duplicate_key,
// missing_field, null_value, wrong_type, number_out_of_range, invalid_value,
// too_deep, too_many_items). Field is a JSON path such as "items[2].qty" when
// one field is at fault, else "". Message is human text for the client; it
// never echoes the input. A ValidationError is immutable once returned.
type ValidationError struct {
	Code    string
	Field   string
	Message string
}

// Error returns "code: message" or "field: code: message".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Code + ": " + e.Message
	}
	return e.Field + ": " + e.Code + ": " + e.Message
}

// The ValidationError codes.
const (
	CodeInvalidJSON      = "invalid_json"
	CodeNotAnObject      = "not_an_object"
	CodeTrailingData     = "trailing_data"
	CodeInvalidUTF8      = "invalid_utf8"
	CodeDuplicateKey     = "duplicate_key"
	CodeMissingField     = "missing_field"
	CodeNullValue        = "null_value"
	CodeWrongType        = "wrong_type"
	CodeNumberOutOfRange = "number_out_of_range"
	CodeInvalidValue     = "invalid_value"
	CodeTooDeep          = "too_deep"
	CodeTooManyItems     = "too_many_items"
)

// The CatalogError codes.
const (
	CodeUnknownSKU       = "unknown_sku"
	CodePriceMismatch    = "price_mismatch"
	CodeAmountOutOfRange = "amount_out_of_range"
)

// CatalogError reports an order that is well-formed but breaks a catalog
// rule; the ingest layer answers it with 422. Code is "unknown_sku" (Field
// "items[i].sku": the SKU is unknown or inactive), "price_mismatch" (Field
// "items[i].price_cents": the client's price differs from the catalog's) or
// "amount_out_of_range" (Field "items[i].qty" or "total_cents": a line or the
// total does not fit in int64 minor units).
type CatalogError struct {
	Code    string
	Field   string
	Message string
}

// Error returns "field: code: message".
func (e *CatalogError) Error() string {
	return e.Field + ": " + e.Code + ": " + e.Message
}

func verr(code, field, msg string) *ValidationError {
	return &ValidationError{Code: code, Field: field, Message: msg}
}

// itemPath returns "items[i]" or "items[i].name"; error path only.
func itemPath(i int, name string) string {
	p := "items[" + strconv.Itoa(i) + "]"
	if name != "" {
		p += "." + name
	}
	return p
}
