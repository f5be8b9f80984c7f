defmodule H2Flow.Test.CowboyClient do
  @moduledoc false
  # Test-only uploader for the Cowboy tests: many POSTs on one connection over H2Client, with
  # send-side flow control, counting the WINDOW_UPDATE frames the server sends.
  #
  # It honours the server's SETTINGS_INITIAL_WINDOW_SIZE and SETTINGS_MAX_CONCURRENT_STREAMS
  # (`:max_concurrent`, default 100, caps it further), sends bodies in 16,384-byte DATA frames as
  # the windows allow, in stream order, and reads frames only when it can send nothing more.
  # A read that waits longer than `:timeout` (default 5,000 ms) is a stall and fails the run.
  #
  # It also checks, from the client's side, two promises of the server: a stream WINDOW_UPDATE
  # never lets the client send more than the rest of its body (`:excess_stream_credit` lists the
  # ones that did), and the largest connection window it ever had (`:max_connection_window`).
  #
  # Request bodies are deterministic bytes; `body/2` gives the body of request `i`, so the
  # handler under test can answer with what it read (`"#{size}:#{crc32}"`) and `run/3` checks it.

  alias H2Flow.Test.H2Client

  @max_frame 16_384
  # What the client advertises: no receive-side flow control of its own to get in the way.
  @client_window 1_073_741_824

  @doc false
  def body(i, size), do: :binary.copy(<<rem(i, 251)>>, size)

  @doc false
  def expected(i, size), do: "#{size}:#{:erlang.crc32(body(i, size))}"

  @doc """
  Runs `requests` (a list of `{path, body_size}` or `{path, body_size, [content_length: false]}`)
  on one new connection and closes it (after calling `:on_done`, if given).
  Returns `%{statuses: [status], bodies_ok: boolean, window_updates: %{connection: n, stream: n},
  window_update_frames: [{stream_id, increment}]}`, or `{:error, reason}`.
  """
  def run(port, requests, opts \\ []) do
    {:ok, conn} = H2Client.connect("127.0.0.1", port)
    :ok = H2Client.send_preface(conn, initial_window_size: @client_window)
    :ok = H2Client.send_window_update(conn, 0, @client_window - 65_535)

    state = %{
      conn: conn,
      timeout: Keyword.get(opts, :timeout, 5000),
      limit: Keyword.get(opts, :max_concurrent, 100),
      server_limit: :infinity,
      initial_window: 65_535,
      conn_window: 65_535,
      max_conn_window: 65_535,
      excess: [],
      todo: Enum.with_index(requests),
      open: %{},
      order: [],
      done: %{}
    }

    result = loop(state)
    if on_done = opts[:on_done], do: on_done.()
    H2Client.close(conn)
    result
  end

  defp loop(%{todo: [], open: open} = s) when map_size(open) == 0 do
    wus = for {:window_update, _, id, <<_::1, inc::31>>} <- H2Client.frames(s.conn), do: {id, inc}

    ok? =
      Enum.all?(s.done, fn {_id, {i, size, resp}} ->
        resp.status == 200 and resp.body == expected(i, size)
      end)

    %{
      statuses: for({_, {_, _, r}} <- Enum.sort(s.done), do: r.status),
      bodies_ok: ok?,
      window_updates: %{
        connection: Enum.count(wus, &(elem(&1, 0) == 0)),
        stream: Enum.count(wus, &(elem(&1, 0) != 0))
      },
      window_update_frames: wus,
      max_connection_window: s.max_conn_window,
      excess_stream_credit: Enum.reverse(s.excess)
    }
  end

  defp loop(s) do
    s = s |> open_streams() |> send_data()

    case H2Client.recv(s.conn, s.timeout) do
      {:ok, conn, frame} -> loop(handle(%{s | conn: conn}, frame))
      {:error, _conn, reason} -> {:error, {reason, Map.keys(s.open)}}
    end
  end

  defp open_streams(%{todo: [{{path, size}, i} | rest]} = s),
    do: open_streams(%{s | todo: [{{path, size, []}, i} | rest]})

  defp open_streams(%{todo: [{{path, size, ropts}, i} | rest]} = s) do
    if map_size(s.open) < min(s.limit, s.server_limit) do
      id = s.conn.next_stream_id

      headers = [
        {":method", "POST"},
        {":scheme", "http"},
        {":authority", "127.0.0.1:#{s.conn.port}"},
        {":path", path}
        | if(Keyword.get(ropts, :content_length, true),
            do: [{"content-length", Integer.to_string(size)}],
            else: []
          )
      ]

      :ok = H2Client.send_headers(s.conn, id, headers, size == 0)
      stream = %{i: i, size: size, left: body(i, size), window: s.initial_window, resp: nil}

      open_streams(%{
        s
        | conn: %{s.conn | next_stream_id: id + 2},
          todo: rest,
          open: Map.put(s.open, id, stream),
          order: s.order ++ [id]
      })
    else
      s
    end
  end

  defp open_streams(s), do: s

  defp send_data(s), do: Enum.reduce(s.order, s, &send_stream/2)

  defp send_stream(id, s) do
    st = s.open[id]
    n = Enum.min([byte_size(st.left), st.window, s.conn_window, @max_frame])

    cond do
      st.left == "" ->
        s

      n <= 0 ->
        s

      true ->
        <<chunk::binary-size(n), rest::binary>> = st.left
        :ok = H2Client.send_data(s.conn, id, chunk, rest == "")
        st = %{st | left: rest, window: st.window - n}
        send_stream(id, %{s | conn_window: s.conn_window - n, open: Map.put(s.open, id, st)})
    end
  end

  defp handle(s, {:settings, false, params}) do
    :ok = H2Client.send_settings_ack(s.conn)

    Enum.reduce(params, s, fn
      {:initial_window_size, v}, s ->
        delta = v - s.initial_window
        open = Map.new(s.open, fn {id, st} -> {id, %{st | window: st.window + delta}} end)
        %{s | initial_window: v, open: open}

      {:max_concurrent_streams, v}, s ->
        %{s | server_limit: v}

      _, s ->
        s
    end)
  end

  defp handle(s, {:window_update, 0, inc}) do
    window = s.conn_window + inc
    %{s | conn_window: window, max_conn_window: max(s.max_conn_window, window)}
  end

  defp handle(s, {:window_update, id, inc}) do
    case s.open do
      %{^id => st} ->
        st = %{st | window: st.window + inc}

        # Cowboy writes a connection WINDOW_UPDATE and a stream one it decides together in one
        # write, the connection's first: `carried?` says this one came with one.
        carried? = match?([_, {:window_update, _, 0, _} | _], s.conn.received)

        s =
          if st.window > byte_size(st.left),
            do: %{
              s
              | excess: [
                  %{
                    stream: id,
                    increment: inc,
                    window: st.window,
                    left: byte_size(st.left),
                    with_connection_credit: carried?
                  }
                  | s.excess
                ]
            },
            else: s

        %{s | open: Map.put(s.open, id, st)}

      _ ->
        s
    end
  end

  defp handle(s, {:headers, id, headers, fin?}) do
    update(s, id, fin?, fn resp ->
      case {resp, headers} do
        {nil, [{":status", status} | _]} -> %{status: String.to_integer(status), body: ""}
        {resp, _} -> resp
      end
    end)
  end

  defp handle(s, {:data, id, data, fin?}),
    do: update(s, id, fin?, fn resp -> %{resp | body: resp.body <> data} end)

  defp handle(s, {:rst_stream, id, code}) do
    case s.open do
      # RST_STREAM(NO_ERROR) after a complete response: the server declines the rest of a body.
      %{^id => %{resp: %{}} = st} when code == :no_error -> close(s, id, st)
      %{^id => _} -> raise "stream #{id} reset: #{inspect(code)}"
      _ -> s
    end
  end

  defp handle(_s, {:goaway, _, code, debug}), do: raise("GOAWAY #{inspect(code)} #{debug}")
  defp handle(s, _frame), do: s

  defp update(s, id, fin?, fun) do
    st = Map.fetch!(s.open, id)
    st = %{st | resp: fun.(st.resp)}
    if fin?, do: close(s, id, st), else: %{s | open: Map.put(s.open, id, st)}
  end

  defp close(s, id, st) do
    %{
      s
      | open: Map.delete(s.open, id),
        order: List.delete(s.order, id),
        done: Map.put(s.done, id, {st.i, st.size, st.resp})
    }
  end
end
