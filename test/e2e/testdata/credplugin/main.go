// Command credplugin is a kubelet image credential provider plugin for
// pullsafe's e2e test (TestCredentialProviderServiceAccountToken), speaking
// the exec protocol (credentialprovider.kubelet.k8s.io/v1): it returns the
// private registry's credentials only to the one service account and
// audience it is told, after reading them from the service-account token it
// is given (its aud and sub claims), and no credentials to anyone else.
//
//	credplugin REGISTRY AUDIENCE SUBJECT USERNAME   (password in $PLUGIN_PASSWORD)
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: credplugin REGISTRY AUDIENCE SUBJECT USERNAME")
		os.Exit(2)
	}
	registry, audience, subject, user := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	var req struct {
		APIVersion          string `json:"apiVersion"`
		Kind                string `json:"kind"`
		Image               string `json:"image"`
		ServiceAccountToken string `json:"serviceAccountToken"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil || req.Kind != "CredentialProviderRequest" {
		fmt.Fprintf(os.Stderr, "not a CredentialProviderRequest: %v\n", err)
		os.Exit(1)
	}
	auth := map[string]any{}
	if allowed(req.ServiceAccountToken, audience, subject) {
		auth[registry] = map[string]string{"username": user, "password": os.Getenv("PLUGIN_PASSWORD")}
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderResponse",
		"cacheKeyType": "Registry", "cacheDuration": "0s", "auth": auth,
	})
}

// allowed reads the token's claims (the API server signed it; a real
// provider's cloud verifies the signature, this one trusts its caller).
func allowed(token, audience, subject string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var claims struct {
		Aud json.RawMessage `json:"aud"`
		Sub string          `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Sub != subject {
		return false
	}
	var auds []string
	if json.Unmarshal(claims.Aud, &auds) != nil {
		var one string
		if json.Unmarshal(claims.Aud, &one) != nil {
			return false
		}
		auds = []string{one}
	}
	return slices.Contains(auds, audience)
}
