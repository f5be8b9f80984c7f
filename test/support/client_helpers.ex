defmodule H2Flow.Test.ClientHandler do
  @moduledoc false
  # The server side of the client's tests, as an h2flow handler: `/bytes/N` streams N bytes of
  # the pattern, `/sha256` reads the body in 1 MB pieces and answers with its size and hash,
  # `/echo` answers with the body, `/sleep/MS` answers after MS ms, `/reset/CODE` resets the
  # stream, `/crash` crashes after the response head, `/trailers` ends with trailers.

  @behaviour H2Flow.Handler

  alias H2Flow.Req
  alias H2Flow.Test.ClientHelpers

  @impl true
  def init(req, state), do: {:ok, route(String.split(Req.path(req), "/", trim: true), req), state}

  defp route(["bytes", n], req) do
    req = Req.stream_reply(200, %{"content-length" => n}, req)

    ClientHelpers.pattern(String.to_integer(n))
    |> Enum.reduce_while(:ok, fn piece, :ok ->
      case Req.stream_body(piece, :nofin, req) do
        :ok -> {:cont, :ok}
        error -> {:halt, error}
      end
    end)
    |> case do
      :ok -> Req.stream_body("", :fin, req)
      error -> error
    end

    req
  end

  defp route(["sha256"], req) do
    {size, hash, req} = ClientHelpers.hash_body(req)
    Req.reply(200, %{"x-size" => "#{size}"}, hash, req)
  end

  defp route(["echo"], req) do
    {:ok, body, req} = Req.read_body(req, length: 64_000_000)
    Req.reply(200, %{"x-method" => Req.method(req)}, body, req)
  end

  defp route(["sleep", ms], req) do
    Process.sleep(String.to_integer(ms))
    Req.reply(200, %{}, "slept", req)
  end

  defp route(["reset", code], req) do
    Req.reset(req, String.to_existing_atom(code))
    req
  end

  defp route(["crash"], req) do
    req = Req.stream_reply(200, %{}, req)
    Req.stream_body("partial", :nofin, req)
    exit(:crash_on_purpose)
  end

  defp route(["trailers"], req) do
    req = Req.stream_reply(200, %{"trailer" => "x-sum"}, req)
    Req.stream_body("body", :nofin, req)
    Req.stream_trailers(%{"x-sum" => "42"}, req)
    req
  end

  defp route(_, req), do: Req.reply(404, %{}, "", req)
end

defmodule H2Flow.Test.ClientHelpers do
  @moduledoc false
  # Shared by the client's tests: a deterministic body pattern and its hash, hashing a request
  # body read in pieces, and reading a streamed response to its end.

  @block for i <- 0..65_535, into: <<>>, do: <<rem(i * 7 + 3, 251)>>

  @doc "The first `n` bytes of the pattern, as a stream of pieces of at most 64 KiB."
  def pattern(n) do
    Stream.unfold(n, fn
      0 -> nil
      left when left >= 65_536 -> {@block, left - 65_536}
      left -> {binary_part(@block, 0, left), 0}
    end)
  end

  @doc "The hex SHA-256 of the first `n` bytes of the pattern."
  def pattern_hash(n) do
    n
    |> pattern()
    |> Enum.reduce(:crypto.hash_init(:sha256), &:crypto.hash_update(&2, &1))
    |> hex()
  end

  def hex(state), do: state |> :crypto.hash_final() |> Base.encode16(case: :lower)

  def sha256(data), do: :crypto.hash(:sha256, data) |> Base.encode16(case: :lower)

  @doc "In a handler: reads the body 1 MB at a time; returns its size and hex SHA-256."
  def hash_body(req, size \\ 0, state \\ :crypto.hash_init(:sha256)) do
    case H2Flow.Req.read_body(req, length: 1_000_000) do
      {:ok, data, req} ->
        {size + byte_size(data), hex(:crypto.hash_update(state, data)), req}

      {:more, data, req} ->
        hash_body(req, size + byte_size(data), :crypto.hash_update(state, data))
    end
  end

  @doc "Reads a streamed response to its end: `{body, response}`."
  def collect(response, acc \\ []) do
    case H2Flow.Client.read_body(response) do
      {:more, data, response} -> collect(response, [acc | data])
      {:ok, data, response} -> {IO.iodata_to_binary([acc | data]), response}
      {:error, reason} -> {:error, reason}
    end
  end

  @doc "Reads a streamed response to its end: `{size, hex sha256, pieces, response}`."
  def read_all(response, opts \\ []) do
    read_all(response, opts, 0, :crypto.hash_init(:sha256), 0)
  end

  defp read_all(response, opts, size, state, pieces) do
    case H2Flow.Client.read_body(response, opts) do
      {:more, data, response} ->
        read_all(
          response,
          opts,
          size + byte_size(data),
          :crypto.hash_update(state, data),
          pieces + 1
        )

      {:ok, data, response} ->
        {size + byte_size(data), hex(:crypto.hash_update(state, data)), pieces + 1, response}

      {:error, reason} ->
        {:error, reason}
    end
  end
end
