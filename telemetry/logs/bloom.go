package logs

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/bits"
)

// bloom is a term filter over 2^p bits with bloomK probes by double hashing. Folding (OR of
// the two halves) halves it and keeps every term it holds, so a sealed segment's filter is
// shrunk to the size its terms need.
type bloom struct {
	b []byte
}

const bloomK = 4

func newBloom(bytes int) *bloom {
	n := 1 << bits.Len(uint(max(bytes, 64)-1)) // power of two
	return &bloom{b: make([]byte, n)}
}

func termHash(t []byte) (uint64, uint64) {
	// FNV-1a 64, then a second mix for the step (stable across versions and restarts)
	h := uint64(14695981039346656037)
	for _, c := range t {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h2 := h ^ (h >> 33)
	h2 *= 0xff51afd7ed558ccd
	h2 ^= h2 >> 33
	return h, h2 | 1
}

func (f *bloom) add(t []byte) {
	m := uint64(len(f.b)) * 8
	h1, h2 := termHash(t)
	for i := range uint64(bloomK) {
		x := (h1 + i*h2) & (m - 1)
		f.b[x>>3] |= 1 << (x & 7)
	}
}

func (f *bloom) has(t []byte) bool {
	return bloomHas(len(f.b), t, func(off int) byte { return f.b[off] })
}

// bloomHas probes a filter of n bytes through get.
func bloomHas(n int, t []byte, get func(off int) byte) bool {
	m := uint64(n) * 8
	h1, h2 := termHash(t)
	for i := range uint64(bloomK) {
		x := (h1 + i*h2) & (m - 1)
		if get(int(x>>3))&(1<<(x&7)) == 0 {
			return false
		}
	}
	return true
}

// fold shrinks the filter while its estimated false-positive rate stays under 1%.
func (f *bloom) fold() {
	for len(f.b) > 64 {
		half := len(f.b) / 2
		set := 0
		for i := range half {
			set += bits.OnesCount8(f.b[i] | f.b[i+half])
		}
		fill := float64(set) / float64(half*8)
		if math.Pow(fill, bloomK) > 0.01 {
			return
		}
		nb := make([]byte, half)
		for i := range half {
			nb[i] = f.b[i] | f.b[i+half]
		}
		f.b = nb
	}
}

// summary is a sealed segment's index file (.idx):
//
//	"CLX1" || minT (8) || maxT (8) || count (8) || rawBytes (8) || bloomLen (4)
//	|| crc32c(header before it) (4) || crc32c(bloom) (4) || bloom
type summary struct {
	minT, maxT int64
	count      int64
	raw        int64
	bloomLen   int
	bloomCRC   uint32
}

const summaryMagic = "CLX1"
const summaryHeader = 4 + 8*4 + 4 + 4 + 4

func (s *summary) marshal(b *bloom) []byte {
	out := make([]byte, 0, summaryHeader+len(b.b))
	out = append(out, summaryMagic...)
	for _, v := range []int64{s.minT, s.maxT, s.count, s.raw} {
		out = binary.LittleEndian.AppendUint64(out, uint64(v))
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b.b)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(b.b, crcTable))
	return append(out, b.b...)
}

// unmarshalSummaryHeader decodes the header of an index file.
func unmarshalSummaryHeader(h []byte) (summary, bool) {
	if len(h) < summaryHeader || string(h[:4]) != summaryMagic {
		return summary{}, false
	}
	if crc32.Checksum(h[:summaryHeader-8], crcTable) != binary.LittleEndian.Uint32(h[summaryHeader-8:]) {
		return summary{}, false
	}
	var s summary
	s.minT = int64(binary.LittleEndian.Uint64(h[4:]))
	s.maxT = int64(binary.LittleEndian.Uint64(h[12:]))
	s.count = int64(binary.LittleEndian.Uint64(h[20:]))
	s.raw = int64(binary.LittleEndian.Uint64(h[28:]))
	s.bloomLen = int(binary.LittleEndian.Uint32(h[36:]))
	s.bloomCRC = binary.LittleEndian.Uint32(h[summaryHeader-4:])
	if s.bloomLen < 64 || s.bloomLen&(s.bloomLen-1) != 0 || s.bloomLen > 1<<28 || s.minT > s.maxT || s.count < 0 {
		return summary{}, false
	}
	return s, true
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, crcTable) }
