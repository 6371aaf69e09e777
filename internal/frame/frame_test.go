package frame

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("y"), 1000)} {
		if err := Write(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{0, 1, 1000} {
		b, err := Read(&buf, 1000)
		if err != nil || len(b) != want {
			t.Fatalf("readFrame = %d bytes, %v; want %d", len(b), err, want)
		}
	}
	buf.Reset()
	Write(&buf, make([]byte, 1001))
	if _, err := Read(&buf, 1000); !errors.Is(err, ErrTooLarge) {
		t.Errorf("frame over the limit: err = %v; want ErrTooLarge", err)
	}
	if _, err := Read(bytes.NewReader([]byte{0, 0, 0, 9, 'a'}), 100); err == nil {
		t.Error("truncated frame: no error")
	}
}
