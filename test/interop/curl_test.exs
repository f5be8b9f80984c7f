defmodule H2Flow.Interop.CurlTest do
  # curl (libcurl with nghttp2) against h2flow over h2c (prior knowledge) and TLS (the CA of
  # H2Flow.TLS.self_signed/1 given with --cacert): --parallel downloads, 200 URLs at most 100 at
  # a time, every file checked against its hash; uploads from standard input (-T -, without
  # content-length; --data-binary @-, with) and from a file (-T file, --data-binary @file),
  # the server answering the SHA-256 of what it read; a request with content-length twice.
  use ExUnit.Case, async: false

  alias H2Flow.Test.{Interop, InteropHandler}

  @moduletag :interop
  @moduletag :tmp_dir
  @moduletag timeout: 300_000

  @mib 1024 * 1024
  @sizes [0, 100_000, 262_143, 262_144, 262_145, 4 * @mib, 64 * @mib]

  setup_all do
    curl = System.find_executable("curl") || flunk("curl is not on PATH")
    {version, 0} = System.cmd(curl, ["--version"])
    [_, major, minor] = Regex.run(~r/^curl (\d+)\.(\d+)/, version)
    %{curl: curl, curl_version: {String.to_integer(major), String.to_integer(minor)}}
  end

  defp transport_args(%{transport: :tcp}), do: ["--http2-prior-knowledge"]
  defp transport_args(%{transport: :tls, ca: ca}), do: ["--http2", "--cacert", ca]

  for transport <- [:tcp, :tls] do
    @transport transport

    test "--parallel over #{transport}: 200 downloads, at most 100 at a time, on one " <>
           "connection; every file intact",
         ctx do
      # curl 7.88 (Debian 12) fails every transfer but the first that it multiplexes onto an
      # h2c connection with prior knowledge: "Error in the HTTP2 framing layer", against
      # nghttpd too (curl/curl#10634, fixed in curl 8.0).
      if @transport == :tcp and ctx.curl_version < {8, 0} do
        IO.puts(
          "\nSkipping curl --parallel over h2c: curl #{inspect(ctx.curl_version)} has " <>
            "curl/curl#10634 (fixed in 8.0)"
        )
      else
        parallel(ctx, @transport)
      end
    end

    test "uploads over #{transport} from standard input and from a file, 0 B to 64 MiB: " <>
           "the server hashes every byte",
         ctx do
      s = Interop.start!(@transport, ctx.tmp_dir)
      files = for size <- @sizes, do: {size, write_random(ctx.tmp_dir, size)}

      {results, log} =
        Interop.capture(s.server, fn ->
          for {size, {file, sha}} <- files,
              how <- ["-T -", "--data-binary @-", "-T file", "--data-binary @file"] do
            {how, size, upload(ctx, s, how, file), "#{size} #{sha}"}
          end
        end)

      bad = for {how, size, got, want} <- results, got != want, do: {how, size, got}
      assert bad == [], "uploads that came back wrong: #{inspect(bad)}"
      stats = Interop.assert_clean!(s.server, log)
      assert stats.data_bytes_received == Enum.sum(@sizes) * 4
    end

    # RFC 9110 §8.6 allows a field line repeated with the same value; curl sends what -H says.
    test "two identical content-length fields over #{transport}: the body is read, the " <>
           "connection lives (issue 14 #3)",
         ctx do
      s = Interop.start!(@transport, ctx.tmp_dir)
      twice = ["-H", "content-length: 5", "-H", "content-length: 5"]

      args =
        ["-sS", "--max-time", "30"] ++
          transport_args(s) ++ twice ++ ["--data-binary", "hello", "#{s.url}/upload"]

      {{output, status}, log} =
        Interop.capture(s.server, fn ->
          Interop.run!("curl, content-length twice", ctx.curl, args)
        end)

      assert {output, status} == {"5 #{sha256("hello")}", 0}
      Interop.assert_clean!(s.server, log)
    end
  end

  defp parallel(ctx, transport) do
    s = Interop.start!(transport, ctx.tmp_dir)
    out = Path.join(ctx.tmp_dir, "downloads")
    File.mkdir_p!(out)

    args =
      ["-sS", "--parallel", "--parallel-max", "100", "--max-time", "60"] ++
        transport_args(s) ++
        ["-w", "%{http_code} %{http_version} %{num_connects}\\n"] ++
        ["-o", Path.join(out, "#1"), "#{s.url}/bytes?n=[100000-100199]"]

    {{output, status}, log} =
      Interop.capture(s.server, fn ->
        Interop.run!("curl --parallel", ctx.curl, args, timeout: 120_000)
      end)

    assert status == 0, output
    # -w's lines; curl's parallel progress meter comes on standard error, mixed in.
    lines = output |> String.split(["\n", "\r"]) |> Enum.filter(&(&1 =~ ~r/^\d{3} \S+ \d+$/))
    assert length(lines) == 200, output
    assert Enum.all?(lines, &String.starts_with?(&1, "200 2 ")), output
    # One transfer connected; the other 199 were multiplexed onto its connection.
    connects = lines |> Enum.map(&(&1 |> String.split() |> List.last() |> String.to_integer()))
    assert Enum.sum(connects) == 1

    for n <- 100_000..100_199 do
      body = File.read!(Path.join(out, "#{n}"))
      assert byte_size(body) == n
      assert sha256(body) == InteropHandler.pattern_sha256(n)
    end

    stats = Interop.assert_clean!(s.server, log)
    Interop.report("curl --parallel over #{transport}: peak #{stats.peak_open_streams} streams")
    assert stats.streams_opened == 200
    assert stats.peak_open_streams <= 100
  end

  # Runs one upload; returns curl's output (the server's "size sha256").
  defp upload(ctx, s, how, file) do
    {source, flag} =
      case how do
        "-T -" -> {:stdin, ["-T", "-"]}
        "--data-binary @-" -> {:stdin, ["--data-binary", "@-"]}
        "-T file" -> {:file, ["-T", file]}
        "--data-binary @file" -> {:file, ["--data-binary", "@" <> file]}
      end

    args = ["-sS", "--max-time", "60"] ++ transport_args(s) ++ flag ++ ["#{s.url}/upload"]
    what = "curl #{how} of #{File.stat!(file).size} bytes over #{s.transport}"

    {output, status} =
      case source do
        :file ->
          Interop.run!(what, ctx.curl, args, timeout: 90_000)

        :stdin ->
          script = ~s(exec "$0" "$@" < "$H2FLOW_UPLOAD")
          sh_args = ["-c", script, ctx.curl | args]
          Interop.run!(what, "/bin/sh", sh_args, env: %{"H2FLOW_UPLOAD" => file}, timeout: 90_000)
      end

    assert status == 0, "#{what}: exit #{status}: #{output}"
    output
  end

  defp write_random(dir, size) do
    path = Path.join(dir, "upload-#{size}")

    ctx =
      File.open!(path, [:write, :binary], fn io ->
        Enum.reduce(chunks(size), :crypto.hash_init(:sha256), fn n, ctx ->
          data = :crypto.strong_rand_bytes(n)
          IO.binwrite(io, data)
          :crypto.hash_update(ctx, data)
        end)
      end)

    {path, ctx |> :crypto.hash_final() |> Base.encode16(case: :lower)}
  end

  defp chunks(size) do
    full = List.duplicate(@mib, div(size, @mib))
    if rem(size, @mib) > 0, do: full ++ [rem(size, @mib)], else: full
  end

  defp sha256(data), do: :crypto.hash(:sha256, data) |> Base.encode16(case: :lower)
end
