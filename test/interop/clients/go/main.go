// Go net/http client for the interop suite (test/interop/go_test.exs): HTTP/2 over TLS with
// the server's CA in RootCAs, standard library only.
//
//	interop -url https://127.0.0.1:PORT -ca ca.pem -mode upload|download -n 100 -size 10485760
//
// After one request (so that the connection pool knows the server speaks HTTP/2), runs n
// requests at once: uploads of size bytes of seeded pseudo-random data (every other one
// without content-length), the server answering "size sha256"; or downloads of /bytes?n=size,
// checked against the x-sha256 header. Prints "RESULT <json>".
package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

type result struct {
	OK       int            `json:"ok"`
	Failures map[string]int `json:"failures"`
	Protos   map[string]int `json:"protos"`
	Ms       int64          `json:"ms"`
}

func main() {
	url := flag.String("url", "", "base URL")
	caFile := flag.String("ca", "", "CA PEM file")
	mode := flag.String("mode", "upload", "upload or download")
	n := flag.Int("n", 100, "concurrent requests")
	size := flag.Int64("size", 10<<20, "bytes per request")
	timeout := flag.Duration("timeout", 120*time.Second, "per request")
	flag.Parse()

	pem, err := os.ReadFile(*caFile)
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		check(fmt.Errorf("no certificate in %s", *caFile))
	}
	client := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true,
		},
	}

	var mu sync.Mutex
	res := result{Failures: map[string]int{}, Protos: map[string]int{}}
	record := func(proto string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if proto != "" {
			res.Protos[proto]++
		}
		if err != nil {
			res.Failures[err.Error()]++
		} else {
			res.OK++
		}
	}

	// One request first, so that the others find a connection known to speak HTTP/2 and share
	// it (else each of the 100 dials its own while none is established yet).
	warmup, err := client.Get(*url + "/hello")
	check(err)
	io.Copy(io.Discard, warmup.Body)
	warmup.Body.Close()

	started := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if *mode == "upload" {
				record(upload(client, *url, i, *size))
			} else {
				record(download(client, *url, *size))
			}
		}(i)
	}
	wg.Wait()
	res.Ms = time.Since(started).Milliseconds()
	out, err := json.Marshal(res)
	check(err)
	fmt.Println("RESULT " + string(out))
}

func upload(client *http.Client, url string, i int, size int64) (string, error) {
	hash := sha256.New()
	body := io.TeeReader(io.LimitReader(rand.New(rand.NewSource(int64(i))), size), hash)
	req, err := http.NewRequest("POST", url+"/upload", body)
	if err != nil {
		return "", err
	}
	if i%2 == 0 {
		req.ContentLength = size
	} else {
		req.ContentLength = -1 // unknown: no content-length field
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.Proto, err
	}
	want := fmt.Sprintf("%d %s", size, hex.EncodeToString(hash.Sum(nil)))
	if resp.StatusCode != 200 || string(answer) != want {
		return resp.Proto, fmt.Errorf("status %d, answer %q, want %q", resp.StatusCode, answer, want)
	}
	return resp.Proto, nil
}

func download(client *http.Client, url string, size int64) (string, error) {
	resp, err := client.Get(fmt.Sprintf("%s/bytes?n=%d", url, size))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	hash := sha256.New()
	got, err := io.Copy(hash, resp.Body)
	if err != nil {
		return resp.Proto, err
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	if resp.StatusCode != 200 || got != size || !strings.EqualFold(sum, resp.Header.Get("x-sha256")) {
		return resp.Proto, fmt.Errorf("status %d, %d bytes, sha256 %s, header %s", resp.StatusCode, got, sum, resp.Header.Get("x-sha256"))
	}
	return resp.Proto, nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
