package state

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// MaxRecordBytes bounds every replicated record: a record larger than this is refused when
// written and when read (remote input is untrusted).
const MaxRecordBytes = 256 << 10

// One codec for every replicated record: canonical CBOR (deterministic, so equal records
// give equal bytes), decoded with limits. Records use integer keys (`cbor:"N,keyasint"`),
// so they are small and independent of the JSON API's field names; a new field gets a new
// number and old nodes ignore it.
var recEnc, recDec = func() (cbor.EncMode, cbor.DecMode) {
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano // full precision: create order compares timestamps
	em, err := eo.EncMode()
	if err != nil {
		panic(err)
	}
	dm, err := cbor.DecOptions{
		MaxArrayElements: 4096, MaxMapPairs: 4096, MaxNestedLevels: 8,
		DupMapKey: cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return em, dm
}()

// Encode encodes a replicated record.
func Encode(v any) ([]byte, error) {
	b, err := recEnc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("state: encode %T: %w", v, err)
	}
	if len(b) > MaxRecordBytes {
		return nil, fmt.Errorf("state: %T record of %d bytes exceeds the %d-byte limit", v, len(b), MaxRecordBytes)
	}
	return b, nil
}

// Decode decodes a replicated record into v, refusing oversized or malformed input.
func Decode(b []byte, v any) error {
	if len(b) > MaxRecordBytes {
		return fmt.Errorf("state: %T record of %d bytes exceeds the %d-byte limit", v, len(b), MaxRecordBytes)
	}
	if err := recDec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("state: decode %T: %w", v, err)
	}
	return nil
}
