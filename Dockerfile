# kvip's image: one static (musl) binary on an empty base.
#
# The build stage runs scripts/build-static, the same script CI runs on every change (no
# container engine is available there, so the image itself is not built in CI).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/build-static \
 && cp target/x86_64-unknown-linux-musl/release/kvip /kvip

# Nothing but the binary: no shell, no libc, no users. kvip needs no files of its own, so the
# image runs under any UID; the static pod runs it as root with only NET_ADMIN and NET_RAW,
# because kubeadm's kubeconfigs are readable by root only.
FROM scratch
COPY --from=build /kvip /kvip
ENTRYPOINT ["/kvip"]
CMD ["run"]
