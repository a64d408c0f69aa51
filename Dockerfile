# syntax=docker/dockerfile:1
# Multi-arch image: the builder runs natively on the build machine and Go
# cross-compiles for TARGETOS/TARGETARCH, so no emulation is involved.
#   docker buildx build --platform linux/amd64,linux/arm64 -t IMAGE --push .
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first: this layer is reused while go.mod/go.sum are unchanged.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/pullsafe ./cmd/pullsafe

# distroless static:nonroot, pinned by digest: no shell, no package manager,
# CA certificates for HTTPS registries included.
FROM gcr.io/distroless/static:nonroot@sha256:1c2c046bc09ed40fad370b599a0b1ae7987f55b01e247cf27a7c27cd97e5bbc7
COPY --from=build /out/pullsafe /pullsafe
USER 65532:65532
ENTRYPOINT ["/pullsafe"]
CMD ["serve"]
