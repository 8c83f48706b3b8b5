package cli

import (
	"flag"

	"go.uber.org/zap"

	"github.com/recur-ml/recur/internal/cluster"
)

// securityFlags choose the transport security of every connection between
// processes: mutual TLS with certificates derived from the cluster key
// (the default), with the organisation's certificates, or plaintext.
type securityFlags struct {
	cert, key, ca string
	insecure      bool
}

func (f *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "this process's certificate (PEM), from the organisation's CA; with --tls-key and --tls-ca (default: minted from the cluster key)")
	fs.StringVar(&f.key, "tls-key", "", "the private key of --tls-cert (PEM)")
	fs.StringVar(&f.ca, "tls-ca", "", "the CA (PEM) every peer's certificate must chain to")
	fs.BoolVar(&f.insecure, "insecure", false, "plaintext between processes, no TLS (a trusted network only; warned at start)")
}

// security builds the identity of a process named name and says at start
// which security it runs with.
func (f *securityFlags) security(key []byte, name string, log *zap.Logger) (*cluster.Security, error) {
	sec, err := cluster.NewSecurity(cluster.SecurityConfig{Secret: key, Name: name, CertFile: f.cert, KeyFile: f.key, CAFile: f.ca, Insecure: f.insecure, Log: log})
	if err != nil {
		return nil, err
	}
	if sec.Insecure() {
		log.Warn("TLS is off (--insecure): control, state transfer and gradients travel in plaintext; anyone on the network can read the model")
	} else {
		log.Info("security", zap.String("transport", sec.Mode()))
	}
	return sec, nil
}

// args are the flags that give a child process the same security.
func (f *securityFlags) args() []string {
	var out []string
	if f.insecure {
		out = append(out, "--insecure")
	}
	if f.cert != "" {
		out = append(out, "--tls-cert", f.cert, "--tls-key", f.key, "--tls-ca", f.ca)
	}
	return out
}
