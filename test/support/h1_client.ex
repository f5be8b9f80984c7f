defmodule H2Flow.Test.H1Client do
  @moduledoc false
  # A raw HTTP/1.1 test client over :gen_tcp (or :ssl), independent of the code under test:
  # requests are written as bytes, responses read with :erlang.decode_packet/3 (the VM's own
  # HTTP parser) and their bodies decoded here (content-length, chunked, or up to the close).

  defstruct [:socket, :transport, buffer: ""]

  @type t :: %__MODULE__{}
  @type response :: %{
          status: non_neg_integer(),
          version: {non_neg_integer(), non_neg_integer()},
          headers: [{binary(), binary()}],
          body: binary(),
          trailers: [{binary(), binary()}]
        }

  def connect(port, opts \\ []) do
    {transport, extra} =
      case Keyword.get(opts, :tls) do
        nil -> {:gen_tcp, []}
        tls_opts -> {:ssl, tls_opts}
      end

    sock_opts = [:binary, active: false, nodelay: true] ++ extra

    case transport.connect(~c"127.0.0.1", port, sock_opts, 5_000) do
      {:ok, socket} -> {:ok, %__MODULE__{socket: socket, transport: transport}}
      error -> error
    end
  end

  def connect!(port, opts \\ []) do
    {:ok, c} = connect(port, opts)
    c
  end

  def send!(%__MODULE__{} = c, bytes) do
    :ok = c.transport.send(c.socket, bytes)
    c
  end

  @doc "A request's bytes: `GET path HTTP/1.1`, host `a`, the `headers` given, and `body`."
  def request(method, path, headers \\ [], body \\ "", version \\ "1.1") do
    lines = for {n, v} <- [{"host", "a"} | headers], do: [n, ": ", v, "\r\n"]
    IO.iodata_to_binary([method, " ", path, " HTTP/", version, "\r\n", lines, "\r\n", body])
  end

  @doc """
  Reads one response (1xx responses are returned as responses too). `head?`: it answers a
  HEAD (no body). `{:ok, response, client}` or `{:error, reason, client}` (`:closed` when the
  connection closed before a complete response).
  """
  def recv_response(%__MODULE__{} = c, opts \\ []) do
    timeout = Keyword.get(opts, :timeout, 5_000)

    with {:ok, {status, version}, c} <- status_line(c, timeout),
         {:ok, headers, c} <- headers(c, [], timeout) do
      response = %{status: status, version: version, headers: headers, body: "", trailers: []}
      body(c, response, Keyword.get(opts, :head, false), timeout)
    end
  end

  def recv_response!(c, opts \\ []) do
    {:ok, response, c} = recv_response(c, opts)
    {response, c}
  end

  @doc "Reads until the server closes; returns everything it sent, or `{:timeout, bytes}`."
  def read_to_close(%__MODULE__{} = c, timeout \\ 5_000) do
    case c.transport.recv(c.socket, 0, timeout) do
      {:ok, data} -> read_to_close(%{c | buffer: c.buffer <> data}, timeout)
      {:error, :timeout} -> {:timeout, c.buffer}
      {:error, _} -> c.buffer
    end
  end

  @doc "Whether the server closed the connection (within `timeout`), buffered bytes aside."
  def closed?(%__MODULE__{} = c, timeout \\ 5_000) do
    case c.transport.recv(c.socket, 0, timeout) do
      {:ok, _data} -> closed?(c, timeout)
      {:error, :timeout} -> false
      {:error, _} -> true
    end
  end

  def close(%__MODULE__{} = c), do: c.transport.close(c.socket)

  def header(response, name) do
    case List.keyfind(response.headers, name, 0) do
      {_, v} -> v
      nil -> nil
    end
  end

  defp status_line(c, timeout) do
    case :erlang.decode_packet(:http_bin, c.buffer, []) do
      {:ok, {:http_response, version, status, _reason}, rest} ->
        {:ok, {status, version}, %{c | buffer: rest}}

      {:more, _} ->
        more(c, timeout, &status_line(&1, timeout))

      {:ok, other, _rest} ->
        {:error, {:not_a_response, other}, c}

      {:error, reason} ->
        {:error, reason, c}
    end
  end

  defp headers(c, acc, timeout) do
    case :erlang.decode_packet(:httph_bin, c.buffer, []) do
      {:ok, {:http_header, _, name, _, value}, rest} ->
        headers(%{c | buffer: rest}, [{lower(name), value} | acc], timeout)

      {:ok, :http_eoh, rest} ->
        {:ok, Enum.reverse(acc), %{c | buffer: rest}}

      {:more, _} ->
        more(c, timeout, &headers(&1, acc, timeout))

      {:ok, other, _} ->
        {:error, {:bad_header, other}, c}

      {:error, reason} ->
        {:error, reason, c}
    end
  end

  defp lower(name) when is_atom(name), do: name |> Atom.to_string() |> String.downcase()
  defp lower(name), do: String.downcase(name)

  defp body(c, %{status: status} = r, head?, _timeout)
       when head? or status < 200 or status in [204, 304],
       do: {:ok, r, c}

  defp body(c, r, _head?, timeout) do
    cond do
      header(r, "transfer-encoding") == "chunked" -> chunks(c, r, [], timeout)
      (n = header(r, "content-length")) != nil -> exactly(c, r, String.to_integer(n), timeout)
      true -> to_close(c, r, timeout)
    end
  end

  defp exactly(c, r, n, timeout) do
    case c.buffer do
      <<body::binary-size(n), rest::binary>> -> {:ok, %{r | body: body}, %{c | buffer: rest}}
      _ -> more(c, timeout, &exactly(&1, r, n, timeout))
    end
  end

  defp to_close(c, r, timeout) do
    case c.transport.recv(c.socket, 0, timeout) do
      {:ok, data} -> to_close(%{c | buffer: c.buffer <> data}, r, timeout)
      {:error, :closed} -> {:ok, %{r | body: c.buffer}, %{c | buffer: ""}}
      {:error, reason} -> {:error, reason, c}
    end
  end

  defp chunks(c, r, acc, timeout) do
    case :binary.split(c.buffer, "\r\n") do
      [line, rest] ->
        size = line |> String.split(";") |> hd() |> String.to_integer(16)

        if size == 0 do
          c = %{c | buffer: rest}

          with {:ok, trailers, c} <- headers(c, [], timeout) do
            {:ok, %{r | body: IO.iodata_to_binary(Enum.reverse(acc)), trailers: trailers}, c}
          end
        else
          case rest do
            <<data::binary-size(size), "\r\n", rest::binary>> ->
              chunks(%{c | buffer: rest}, r, [data | acc], timeout)

            _ ->
              more(c, timeout, &chunks(&1, r, acc, timeout))
          end
        end

      [_] ->
        more(c, timeout, &chunks(&1, r, acc, timeout))
    end
  end

  defp more(c, timeout, next) do
    case c.transport.recv(c.socket, 0, timeout) do
      {:ok, data} -> next.(%{c | buffer: c.buffer <> data})
      {:error, reason} -> {:error, reason, c}
    end
  end
end
