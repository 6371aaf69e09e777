// Command helper is a static test program run inside instances.
//
//	helper alloc MB        allocate and touch MB MiB, then sleep
//	helper alloc-after MS MB  sleep MS ms, then allocate
//	helper fifo PATH       write one byte to PATH and exit
//	helper sleep           sleep forever
//	helper escape k=v...   try every way out of the sandbox (escape_linux.go)
//	helper read PATH       print the file
//	helper dial PATH       connect to a Unix socket and print what it sends
//	helper spawn           start "helper sleep" children until refused, and keep trying
//	helper serve tcp:P udp:Q  answer each TCP connection / UDP datagram with
//	                       "hello from HOSTNAME to REMOTEADDR" (prints "serving" when ready)
//	helper connect tcp|udp ADDR  print the answer of ADDR (a UDP datagram "x" first)
//	helper ifaces          print "NAME ADDR/BITS..." per network interface
//
// Started as constellation-sandbox-probe it is sandbox.Bench's probe: one byte to stdout.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	if filepath.Base(os.Args[0]) == "constellation-sandbox-probe" {
		os.Stdout.Write([]byte{'x'}) // sandbox.Bench's probe
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helper alloc|alloc-after|fifo|sleep ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "alloc":
		mb, _ := strconv.Atoi(os.Args[2])
		alloc(mb)
	case "alloc-after":
		ms, _ := strconv.Atoi(os.Args[2])
		mb, _ := strconv.Atoi(os.Args[3])
		time.Sleep(time.Duration(ms) * time.Millisecond)
		alloc(mb)
	case "fifo":
		f, err := os.OpenFile(os.Args[2], os.O_WRONLY, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		f.Write([]byte{'x'})
		f.Close()
	case "sleep":
		select {}
	case "escape":
		escape(os.Args[2:])
	case "read":
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "dial":
		c, err := net.Dial("unix", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.Copy(os.Stdout, c)
	case "serve":
		serve(os.Args[2:])
	case "connect":
		if err := connect(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "ifaces":
		ifs, err := net.Interfaces()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, i := range ifs {
			fmt.Print(i.Name)
			addrs, _ := i.Addrs()
			for _, a := range addrs {
				fmt.Print(" ", a)
			}
			fmt.Println()
		}
	case "spawn":
		for {
			if err := exec.Command(os.Args[0], "sleep").Start(); err != nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
}

func serve(what []string) {
	host, _ := os.Hostname()
	for _, w := range what {
		proto, port, _ := strings.Cut(w, ":")
		if proto == "udp" {
			pc, err := net.ListenPacket("udp4", ":"+port)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			go func() {
				buf := make([]byte, 512)
				for {
					_, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					pc.WriteTo([]byte("hello from "+host+" to "+from.String()+"\n"), from)
				}
			}()
			continue
		}
		ln, err := net.Listen("tcp4", ":"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("hello from " + host + " to " + c.RemoteAddr().String() + "\n"))
				c.Close()
			}
		}()
	}
	fmt.Println("serving")
	select {}
}

func connect(proto, addr string) error {
	c, err := net.DialTimeout(proto+"4", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if proto == "udp" {
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		os.Stdout.Write(buf[:n])
		return nil
	}
	_, err = io.Copy(os.Stdout, c)
	return err
}

var keep [][]byte

func alloc(mb int) {
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		keep = append(keep, b)
	}
	fmt.Println("allocated", mb)
	time.Sleep(time.Hour)
}
