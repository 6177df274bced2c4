# postern: a static binary on a distroless base.
#   docker build -t postern .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/postern ./cmd/postern

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/postern /usr/local/bin/postern
USER nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/postern"]
