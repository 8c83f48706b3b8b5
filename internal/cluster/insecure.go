package cluster

import (
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// insecureCreds is plaintext transport: Recur authenticates with the
// cluster key; run it on a private network or behind a VPN/mesh for
// confidentiality.
func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }
