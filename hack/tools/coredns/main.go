// Command coredns runs upstream CoreDNS with only the plugins a local cluster's DNS needs.
//
// The stock build links every plugin (cloud providers, etcd, dnstap, ...), which is slow to
// compile and large. Here plugin selection happens at compile time: only the packages below
// are imported (their init registers them), and dnsserver.Directives is cut down to the same
// set, kept in CoreDNS's own execution order from plugin.cfg. There is deliberately no
// "forward": pods must never reach the host's resolver, so a name outside the served zones is
// answered REFUSED by the server itself, at once.
//
// Other packages (metadata, metrics, transfer) are linked because the kubernetes plugin
// imports them; they register themselves but stay unusable, as they are not directives here.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives is the subset of upstream's plugin.cfg in the same relative order: a plugin sees
// the effects of every plugin after it, so the order must not be rearranged. bind is here
// because it is the only way to listen on one address instead of every interface.
var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintln(os.Stderr, "coredns:", err)
		os.Exit(1)
	}
	coremain.Run()
}
