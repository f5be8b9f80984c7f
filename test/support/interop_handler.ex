defmodule H2Flow.Test.InteropHandler do
  @moduledoc false
  # The handler the interop clients talk to: uploads answered with the SHA-256 of what the
  # handler read, downloads of a known pattern with its SHA-256 in a header, slow GETs, and a
  # gRPC bidirectional echo (5-byte prefixed messages, grpc-status in trailers).
  #
  # Bodies are read in a loop on {:more, data, req} until {:ok, data, req}, which works whether
  # read_body hands out pieces (h2flow's half-window pieces) or waits for :length (Cowboy's).

  @behaviour H2Flow.Handler

  alias H2Flow.Req

  # Downloads repeat one 64 KiB block of pseudo-random bytes, the same in every run.
  @block_size 65_536
  @block for i <- 0..1023, into: <<>>, do: :crypto.hash(:sha512, <<i::32>>)

  @impl true
  def init(req, state) do
    req =
      case {Req.method(req), Req.path(req)} do
        {method, "/upload"} when method in ["POST", "PUT"] -> upload(req)
        {"GET", "/bytes"} -> bytes(req)
        {"GET", "/slow"} -> slow(req)
        {"POST", "/grpc/" <> _} -> grpc_echo(req)
        {"GET", path} -> Req.reply(200, %{"content-type" => "text/plain"}, "hello #{path}", req)
        _ -> Req.reply(405, %{}, "", req)
      end

    {:ok, req, state}
  end

  defp upload(req) do
    case hash_body(req, :crypto.hash_init(:sha256), 0) do
      {:ok, size, hash, req} ->
        hex = Base.encode16(hash, case: :lower)
        headers = %{"content-type" => "text/plain", "x-size" => "#{size}", "x-sha256" => hex}
        Req.reply(200, headers, "#{size} #{hex}", req)

      {:error, :closed} ->
        req
    end
  end

  defp hash_body(req, ctx, size) do
    case Req.read_body(req) do
      {:more, data, req} ->
        hash_body(req, :crypto.hash_update(ctx, data), size + byte_size(data))

      {:ok, data, req} ->
        {:ok, size + byte_size(data), :crypto.hash_final(:crypto.hash_update(ctx, data)), req}

      {:error, :closed} = error ->
        error
    end
  end

  # GET /bytes?n=N: N bytes of the pattern, in 64 KiB pieces; x-sha256 is their hash.
  defp bytes(req) do
    n = int_param(req, "n", 0)
    headers = %{"content-type" => "application/octet-stream", "x-sha256" => pattern_sha256(n)}

    if n == 0 do
      Req.reply(200, headers, "", req)
    else
      req = Req.stream_reply(200, Map.put(headers, "content-length", "#{n}"), req)
      send_pattern(req, block(), n)
      req
    end
  end

  defp send_pattern(req, block, n) when n > @block_size do
    case Req.stream_body(block, :nofin, req) do
      :ok -> send_pattern(req, block, n - @block_size)
      {:error, _} -> :ok
    end
  end

  defp send_pattern(req, block, n), do: Req.stream_body(binary_part(block, 0, n), :fin, req)

  @doc "The SHA-256 (lowercase hex) of the first `n` bytes of the download pattern."
  def pattern_sha256(n) do
    block = block()
    full = div(n, @block_size)

    ctx =
      Enum.reduce(1..full//1, :crypto.hash_init(:sha256), fn _, ctx ->
        :crypto.hash_update(ctx, block)
      end)

    ctx = :crypto.hash_update(ctx, binary_part(block, 0, rem(n, @block_size)))
    Base.encode16(:crypto.hash_final(ctx), case: :lower)
  end

  defp block, do: @block

  defp slow(req) do
    Process.sleep(int_param(req, "ms", 100) |> min(10_000))
    Req.reply(200, %{"content-type" => "text/plain"}, "slow", req)
  end

  # gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): every length-prefixed message is echoed as
  # soon as it is complete, then trailers end the stream with grpc-status 0. Reads ask for
  # at least 1 byte, so a small message is not held back waiting for more.
  defp grpc_echo(req) do
    if Req.header("content-type", req, "") |> String.starts_with?("application/grpc") do
      req = Req.stream_reply(200, %{"content-type" => "application/grpc"}, req)

      case grpc_loop(req, "", 0) do
        {:ok, "", count, req} ->
          _ = Req.stream_trailers(%{"grpc-status" => "0", "x-messages" => "#{count}"}, req)
          req

        {:ok, _partial, _count, req} ->
          _ =
            Req.stream_trailers(
              %{"grpc-status" => "13", "grpc-message" => "truncated message"},
              req
            )

          req

        {:error, _} ->
          req
      end
    else
      Req.reply(415, %{"content-type" => "text/plain"}, "application/grpc only", req)
    end
  end

  defp grpc_loop(req, buffer, count) do
    case Req.read_body(req, length: 1) do
      {:more, data, req} ->
        case grpc_echo_messages(req, buffer <> data, count) do
          {:ok, rest, count} -> grpc_loop(req, rest, count)
          error -> error
        end

      {:ok, data, req} ->
        case grpc_echo_messages(req, buffer <> data, count) do
          {:ok, rest, count} -> {:ok, rest, count, req}
          error -> error
        end

      {:error, _} = error ->
        error
    end
  end

  defp grpc_echo_messages(req, <<flag, len::32, msg::binary-size(len), rest::binary>>, count) do
    case Req.stream_body([<<flag, len::32>>, msg], :nofin, req) do
      :ok -> grpc_echo_messages(req, rest, count + 1)
      error -> error
    end
  end

  defp grpc_echo_messages(_req, rest, count), do: {:ok, rest, count}

  defp int_param(req, name, default) do
    case List.keyfind(Req.parse_qs(req), name, 0) do
      {_, value} ->
        case Integer.parse(value) do
          {n, ""} when n >= 0 -> n
          _ -> default
        end

      nil ->
        default
    end
  end
end
