// The Go client of the compatibility matrix (tests/compat.rs): one application process with one
// aws.Config from config.LoadDefaultConfig and one STS client, configured by nothing but its
// environment, calling GetCallerIdentity in a loop. Built against Debian's
// golang-github-aws-aws-sdk-go-v2-dev, offline:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o target/compat/go-client tests/compat/client.go
//
// Usage: go-client SECONDS STS_URL
//
// Prints one JSON line first ({client, version}), then one per call: {ok: true, arn, account_id}
// or {ok: false, error}. This SDK version has no account id in its credentials: account_id is
// always null. Exits 1 if any call failed.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// pause between calls: several calls per rotation, without flooding moto.
const pause = 200 * time.Millisecond

type line struct {
	OK        bool    `json:"ok"`
	Arn       string  `json:"arn,omitempty"`
	AccountID *string `json:"account_id"`
	Error     string  `json:"error,omitempty"`
}

func emit(v interface{}) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

func main() {
	seconds, err := strconv.ParseFloat(os.Args[1], 64)
	if err != nil {
		panic(err)
	}
	url := os.Args[2]
	emit(map[string]string{"client": "aws-sdk-go-v2", "version": runtime.Version()})

	ctx := context.Background()
	resolver := aws.EndpointResolverWithOptionsFunc(
		func(service, region string, _ ...interface{}) (aws.Endpoint, error) {
			return aws.Endpoint{URL: url, SigningRegion: region}, nil
		})
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion("us-east-1"),
		config.WithEndpointResolverWithOptions(resolver))
	if err != nil {
		emit(line{Error: "LoadDefaultConfig: " + err.Error()})
		os.Exit(1)
	}
	client := sts.NewFromConfig(cfg)
	failed := false
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for {
		out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			failed = true
			emit(line{Error: err.Error()})
		} else {
			emit(line{OK: true, Arn: aws.ToString(out.Arn)})
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(pause)
	}
	if failed {
		os.Exit(1)
	}
}
